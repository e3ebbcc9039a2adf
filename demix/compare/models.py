"""Trained models of a comparison: each trained from the run's base by the one trainer and scored by
the one evaluator the validate stage uses, so every method's models are made and measured alike.

A model's id names its mixture, budget, seed and the training settings, so a model is shared by
every use with the same inputs (the prior-mixture check model is also DoReMi's reference) and a
stopped comparison resumes: training is skipped when done (the trainer's own rule) and scores are
cached in ``compare/scores/<id>.json`` with the evaluation settings' hash.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.evaluate.result import EvalResult
from demix.run import RunDir
from demix.util.hashing import hash_json
from demix.util.io import read_json, write_json_atomic


@dataclass
class Cost:
    """What producing an answer took, counted the same way for every method.

    Attributes:
        tokens: tokens trained. flops: 6·P·tokens summed over the models trained.
        seconds: wall seconds of training and evaluation. models: models trained.
    """

    tokens: int = 0
    flops: float = 0.0
    seconds: float = 0.0
    models: int = 0
    parts: list[str] = field(default_factory=list)

    def add(self, summary: dict[str, Any] | None, what: str, extra_seconds: float = 0.0) -> None:
        """Add one trained model's cost from its ``train_summary.json``."""
        s = summary or {}
        tokens = int(s.get("tokens") or 0)
        self.tokens += tokens
        self.flops += 6.0 * float(s.get("params") or 0) * tokens
        self.seconds += float(s.get("train_seconds") or 0.0) + extra_seconds
        self.models += 1
        self.parts.append(what)

    def plus(self, other: Cost) -> Cost:
        return Cost(
            self.tokens + other.tokens,
            self.flops + other.flops,
            self.seconds + other.seconds,
            self.models + other.models,
            [*self.parts, *other.parts],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "flops": self.flops,
            "seconds": round(self.seconds, 3),
            "models": self.models,
            "parts": self.parts,
        }


@dataclass
class Trained:
    """One trained and scored model: its mixture, report-task scores and held-out losses."""

    id: str
    r: np.ndarray
    path: Path
    result: EvalResult
    summary: dict[str, Any]
    eval_seconds: float

    def cost(self, what: str) -> Cost:
        c = Cost()
        c.add(self.summary, what, self.eval_seconds)
        return c


def log(progress: bool, msg: str) -> None:
    if progress:
        print(f"compare: {msg}", file=sys.stderr, flush=True)


class Models:
    """Trains and scores the comparison's models (the evaluator and task suite built once)."""

    def __init__(self, cfg: ExperimentConfig, run: RunDir, *, progress: bool = True) -> None:
        self.cfg, self.run, self.progress = cfg, run, progress
        # "items": cached scores keep per-document values (paired intervals); older caches are rescored
        self.eval_key = hash_json([cfg.evaluate.model_dump(mode="json"), "items"])
        self.train_key = hash_json([cfg.train.model_dump(mode="json"), cfg.model.model_dump(mode="json")])
        self._suite: Any = None
        self._ev: Any = None

    @property
    def suite(self) -> Any:
        if self._suite is None:
            from demix.evaluate import build_tasks

            self._suite = build_tasks(self.cfg, self.run)
        return self._suite

    def model_id(self, prefix: str, r: np.ndarray, tokens: int, seed: int = 0) -> str:
        key = [self.train_key, tokens, np.round(np.asarray(r, dtype=np.float64), 12).tolist(), seed]
        return f"cmp-{prefix}-{hash_json(key)[:10]}"

    def score(self, path: Path, cache_id: str) -> tuple[EvalResult, float]:
        """Report-task scores and held-out losses of a checkpoint (cached by id and evaluation settings)."""
        cache = self.run.root / "compare" / "scores" / f"{cache_id}.json"
        if cache.is_file():
            row = read_json(cache)
            if row.get("eval_key") == self.eval_key:
                return EvalResult.from_json(row["result"]), float(row["seconds"])
        res = self._evaluate(path)
        write_json_atomic(
            cache,
            {
                "eval_key": self.eval_key,
                "path": str(path),
                "result": res.to_json(with_items=True),
                "seconds": res.seconds,
            },
        )
        return res, float(res.seconds)

    def _evaluate(self, path: Path) -> EvalResult:
        """Score a checkpoint with one evaluator for the whole comparison: the first checkpoint's model
        stays the live model and later checkpoints' weights are copied into it (as the search merges
        into its live model), so the task dictionaries and lm-eval's wrapper are built once."""
        import torch

        from demix.evaluate import Evaluator, load_checkpoint

        model, tok = load_checkpoint(path, self.cfg.evaluate, tokenizer_dir=self.run.tokenizer)
        if self._ev is None:
            self._ev = Evaluator(self.cfg, self.run, model, tok, self.suite)
        else:
            with torch.no_grad():
                self._ev.lm.model.load_state_dict(model.state_dict())
        return self._ev.evaluate("report")  # type: ignore[no-any-return]

    def train(self, prefix: str, r: np.ndarray, tokens: int, seed: int = 0) -> Trained:
        """A model trained from the base on mixture ``r`` for ``tokens`` tokens, scored on the report tasks."""
        from demix.train import read_summary, train_reference

        r = np.asarray(r, dtype=np.float64) / float(np.sum(r))
        ref_id = self.model_id(prefix, r, tokens, seed)
        log(self.progress, f"{prefix}: training {ref_id} on {tokens:,} tokens")
        path = train_reference(self.cfg, self.run, r, ref_id, tokens=tokens, progress=self.progress)
        res, secs = self.score(path, ref_id)
        return Trained(ref_id, r, path, res, read_summary(path) or {}, secs)

    def existing(self, ref_id: str, r: np.ndarray, path: Path) -> Trained | None:
        """A model trained elsewhere (a validation reference), scored here; None when it is not there."""
        from demix.train import read_summary

        summary = read_summary(path)
        if summary is None or not (path / "model.safetensors").is_file():
            return None
        res, secs = self.score(path, f"ext-{ref_id}")
        return Trained(ref_id, np.asarray(r, dtype=np.float64), path, res, summary, secs)
