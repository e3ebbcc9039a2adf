"""The real scorer: merge the components with w into one live model, evaluate it with lm-eval.

Built once per worker process: the merge engine holds the stacked components and the live HF model,
the evaluator holds the lm-eval wrapper around that same model and the task suite, so a trial costs
one fused merge (no disk I/O) and one evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.evaluate.spec import EvalRole
from demix.run import RunDir
from demix.search.scoring import Score


class ProxyScorer:
    """w -> merged live model -> lm-eval scores (see :class:`demix.search.scoring.Scorer`)."""

    def __init__(self, cfg: ExperimentConfig, run: RunDir) -> None:
        from demix.evaluate import Evaluator, build_tasks
        from demix.evaluate.command import proxy_tokenizer
        from demix.merge import engine_for_run

        self.cfg = cfg
        self.engine = engine_for_run(cfg, run)
        self.suite = build_tasks(cfg, run)
        tokenizer = proxy_tokenizer(cfg, run, self.engine.model.config)
        self.evaluator = Evaluator(cfg, run, self.engine.model, tokenizer, self.suite)

    def groups(self, role: EvalRole = "search") -> list[str]:
        return list(self.suite.groups(role))

    def score(self, w: np.ndarray, role: EvalRole = "search") -> Score:
        t0 = time.perf_counter()
        m = self.cfg.merge
        self.engine.merge(
            np.asarray(w, dtype=np.float64), method=m.method, normalize=m.normalize, params=m.method_params
        )
        _sync(self.engine.model)
        return self._evaluate(role, merge_s=time.perf_counter() - t0)

    def score_checkpoint(self, path: Path, role: EvalRole = "report") -> Score:
        """Load a checkpoint of the same architecture (the run's base model) into the live model and
        score it, so a report can show what the components added to where they started.

        The next :meth:`score` merges over every parameter, so nothing of it stays behind.
        """
        import torch
        from transformers import AutoModelForCausalLM

        other = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        with torch.no_grad():
            self.engine.model.load_state_dict(other.state_dict(), strict=True)
        del other
        _sync(self.engine.model)
        return self._evaluate(role, merge_s=0.0)

    def _evaluate(self, role: EvalRole, merge_s: float) -> Score:
        t0 = time.perf_counter()
        res = self.evaluator.evaluate(role)
        eval_s = time.perf_counter() - t0
        metrics = {str(k): m for k, m in res.metrics.items()}  # evaluate's Metric, as it is
        bpb = {str(k): float(v) for k, v in (getattr(res, "bpb", None) or {}).items()}
        return Score(metrics, bpb, merge_s, eval_s)


def _sync(model: Any) -> None:
    """Wait for queued GPU work so merge time is the merge's."""
    try:
        import torch

        dev = next(model.parameters()).device
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    except StopIteration:
        return
