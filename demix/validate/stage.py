"""``demix validate``: train real reference models on sampled mixtures and measure proxy fidelity.

N merge-weight vectors w are drawn from a seeded Dirichlet; a reference is trained from the base on
the matching data ratios r = beta*e_G + (1-beta)*w with the components' token budget, so proxies
and references cover the same set of mixtures (../DESIGN.md). Both are scored on every task (search
and report roles), and :mod:`demix.validate.metrics` compares them. Per-mixture scores are cached in
``validation/scores/<id>.json``: a stopped validation resumes, skipping references already trained
and scored.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.errors import DemixError
from demix.evaluate.result import Metric
from demix.mixture import as_dict, weights_to_ratios
from demix.run import RunDir
from demix.util.hashing import hash_json
from demix.util.io import read_json, write_json_atomic
from demix.util.provenance import provenance
from demix.validate import lawcompare
from demix.validate.metrics import fidelity, task_table

VALIDATION_FIELDS = ("value", "direction", "group")  # the part of a Metric validation files record


def sample_weights(k: int, n: int, seed: int, concentration: float) -> np.ndarray:
    """(n, k) merge weights from a symmetric Dirichlet; the first n rows do not depend on n."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.dirichlet(np.full(k, concentration)) for _ in range(n)])


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _metrics_json(metrics: Mapping[str, Metric]) -> dict[str, dict[str, Any]]:
    """Task -> {value, direction (higher/lower), group} of a proxy's or a reference's metrics."""
    return {str(name): m.to_json(VALIDATION_FIELDS) for name, m in metrics.items()}


class _Scorers:
    """The proxy scorer (merge engine + evaluator) and the reference evaluator, built on first use."""

    def __init__(self, cfg: ExperimentConfig, run: RunDir) -> None:
        self.cfg, self.run = cfg, run
        self._proxy: Any = None

    def proxy(self, w: np.ndarray) -> dict[str, Any]:
        if self._proxy is None:
            from demix.search.proxy import ProxyScorer

            self._proxy = ProxyScorer(self.cfg, self.run)
        s = self._proxy.score(w, "all")
        return {"metrics": _metrics_json(s.metrics), "bpb": dict(s.bpb), "seconds": s.merge_s + s.eval_s}

    def reference(self, path: Any) -> dict[str, Any]:
        from demix.evaluate import Evaluator, build_tasks, load_checkpoint

        suite = self._proxy.suite if self._proxy is not None else build_tasks(self.cfg, self.run)
        model, tok = load_checkpoint(path, self.cfg.evaluate, tokenizer_dir=self.run.tokenizer)
        res = Evaluator(self.cfg, self.run, model, tok, suite).evaluate("all")
        return {"metrics": _metrics_json(res.metrics), "bpb": dict(res.bpb), "seconds": res.seconds}


def validate(
    cfg: ExperimentConfig, run: RunDir, mixtures: int | None = None, *, progress: bool = True
) -> dict[str, Any]:
    """Train references on sampled mixtures, score them and their proxies, write ``validation.json``.

    Args:
        mixtures: how many mixtures (default ``validate.mixtures``); raising it later adds mixtures
            and keeps the ones already done.

    Returns:
        The ``validation/validation.json`` document.

    Raises:
        StageError: data not prepared or components not trained.
        DemixError: fewer than 3 mixtures.
    """
    from demix.data.manifest import Manifest

    v = cfg.validate_
    n = int(mixtures if mixtures is not None else v.mixtures)
    if n < 3:
        raise DemixError(f"validate.mixtures={n}: need at least 3 mixtures to rank (--n-mixtures)")
    domains = Manifest.load(run).names
    tokens = int(v.reference_tokens if v.reference_tokens is not None else cfg.train.reference_budget)
    W = sample_weights(len(domains), n, v.seed, v.concentration)
    eval_key = hash_json(cfg.evaluate.model_dump(mode="json"))
    rows = _score_mixtures(cfg, run, domains, W, tokens, eval_key, progress)
    doc = _document(cfg, run, domains, W, tokens, eval_key, rows)
    write_json_atomic(run.validation / "validation.json", doc)
    return doc


def _score_mixtures(
    cfg: ExperimentConfig,
    run: RunDir,
    domains: list[str],
    W: np.ndarray,
    tokens: int,
    eval_key: str,
    progress: bool,
) -> list[dict[str, Any]]:
    """One row per mixture: its reference trained and scored beside its proxy, or read from the cache
    when it was scored with the same evaluation settings."""
    from demix.train import train_reference

    scorers = _Scorers(cfg, run)
    # a reference's id names its mixture and training settings: other settings, other references
    train_key = hash_json([cfg.train.model_dump(mode="json"), cfg.model.model_dump(mode="json")])
    rows: list[dict[str, Any]] = []
    for i, w in enumerate(W):
        r = weights_to_ratios(w, domains, cfg.general, cfg.train.beta)
        ref_id = f"val-{i:03d}-{hash_json([train_key, tokens, np.round(w, 12).tolist()])[:8]}"
        cache = run.validation / "scores" / f"{ref_id}.json"
        if cache.is_file():
            row = read_json(cache)
            if row.get("eval_key") == eval_key:
                rows.append(row)
                continue
        _log(progress, f"validate: reference {i + 1}/{len(W)} ({ref_id}) on {tokens:,} tokens")
        path = train_reference(cfg, run, r, ref_id, tokens=tokens, progress=progress)
        row = {
            "id": ref_id,
            "w": as_dict(w, domains),
            "r": as_dict(r, domains),
            "reference_dir": str(path),
            "proxy": scorers.proxy(w),
            "reference": scorers.reference(path),
            "eval_key": eval_key,
        }
        write_json_atomic(cache, row)
        rows.append(row)
    return rows


def _document(
    cfg: ExperimentConfig,
    run: RunDir,
    domains: list[str],
    W: np.ndarray,
    tokens: int,
    eval_key: str,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """``validation.json``: the mixtures, DeMix's fidelity metrics and the law comparison."""
    from demix.evaluate import build_tasks

    v = cfg.validate_
    # Groups count the tasks the objective counts; report-only accuracy (weight 0) is ranked alone.
    weights = {spec.name: spec.weight for spec in build_tasks(cfg, run)}
    proxy = task_table([row["proxy"]["metrics"] for row in rows], weights=weights)
    reference = task_table([row["reference"]["metrics"] for row in rows], proxy.tasks, weights)
    fid = fidelity(proxy, reference, replicates=v.bootstrap, seed=v.seed, top_fraction=v.top_fraction)
    R = np.array([[row["r"][d] for d in domains] for row in rows])
    return {
        "domains": domains,
        "n": len(W),
        "reference_tokens": tokens,
        "mixtures": [
            {k: row[k] for k in ("id", "w", "r", "reference_dir")}
            | {"proxy": row["proxy"]["metrics"], "reference": row["reference"]["metrics"]}
            | {"proxy_bpb": row["proxy"]["bpb"], "reference_bpb": row["reference"]["bpb"]}
            for row in rows
        ],
        "tasks": proxy.tasks,
        "fidelity": fid.to_json(),
        "law": lawcompare.compare(cfg, domains, R, rows),
        "provenance": provenance(
            {
                "config": hash_json(v.model_dump(mode="json")),
                "evaluate": eval_key,
                "mixtures": hash_json(W.tolist()),
            }
        ),
    }
