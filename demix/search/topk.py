"""``search/recommendation.json``: DeMix's top-k mixture, merged and scored as a new proxy on the
report tasks (never the tasks the search optimised), beside the baselines and the best trial.

The same LightGBM surrogate is fitted whatever sampler ran, so every search ends the DeMix way.
Report objectives are normalised against the baselines scored on the report tasks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.evaluate.scores import group_objectives, objective
from demix.mixture import as_dict
from demix.search.scoring import Score, Scorer
from demix.search.surrogate import recommend_topk
from demix.util.hashing import hash_json
from demix.util.io import read_json, write_json_atomic
from demix.util.provenance import provenance

BASE_MODEL = "base_model"  # the run's base model in the report: a reference, not a baseline
# Rows of the report-task scores that are not the frozen baselines the scale is normalised between.
NOT_BASELINES = ("recommended", "best_trial", BASE_MODEL)

if TYPE_CHECKING:
    import optuna

    from demix.search.context import SearchContext


def completed(study: optuna.Study) -> tuple[np.ndarray, np.ndarray, list[optuna.trial.FrozenTrial]]:
    """(W, y, trials) of the completed trials; y is the objective (mean of groups in groups mode)."""
    import optuna

    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if "w" in t.user_attrs
    ]
    W = np.array([t.user_attrs["w"] for t in done], dtype=np.float64)
    y = np.array([float(t.user_attrs.get("objective", np.nan)) for t in done], dtype=np.float64)
    return W, y, done


def write_recommendation(
    ctx: SearchContext, study: optuna.Study, scorer: Callable[[], Scorer], *, progress: bool = True
) -> dict[str, Any] | None:
    """Fit, recommend, score on the report tasks, write the JSON (skipped when trials are unchanged)."""
    W, y, done = completed(study)
    if len(done) < 2 or not np.isfinite(y).any():
        return None
    s = ctx.cfg.search
    inputs = {
        "trials": hash_json([W.round(12).tolist(), y.round(12).tolist()]),
        "search": hash_json(s.model_dump(mode="json", exclude={"workers", "storage", "timeout_s"})),
        "evaluate": hash_json(ctx.cfg.evaluate.model_dump(mode="json")),
    }
    path = ctx.run.search / "recommendation.json"
    if path.is_file():
        old = read_json(path)
        if old.get("provenance", {}).get("inputs") == inputs:
            return dict(old)
    w, info = recommend_topk(W, y, ctx.pool_prior, s.demix, ctx.constraints, s.seed)
    best = max(done, key=lambda t: t.user_attrs.get("objective", -np.inf))
    mixes = {
        "recommended": w,
        "best_trial": np.array(best.user_attrs["w"]),
        "uniform": np.full(len(ctx.domains), 1.0 / len(ctx.domains)),
        "prior": ctx.prior,
    }
    mixes.update({f"only:{d}": np.eye(len(ctx.domains))[i] for i, d in enumerate(ctx.domains)})
    sc = scorer()
    report: dict[str, Any] = {}
    if sc.groups("report"):
        scored: dict[str, Score] = {}
        for name, m in mixes.items():
            scored[name] = sc.score(m, "report")
            if progress:
                print(f"report: scored {name}", file=sys.stderr, flush=True)
        base = {n: v for n, v in scored.items() if n not in NOT_BASELINES}
        # The model the components were trained from, for reference (not one of the baselines).
        score_checkpoint = getattr(sc, "score_checkpoint", None)
        # merge.base (components.base) for components brought from elsewhere, else the run's own.
        base_dir = Path(ctx.cfg.merge.base) if ctx.cfg.merge.base is not None else ctx.run.base
        if score_checkpoint is not None and (base_dir / "config.json").is_file():
            try:
                scored[BASE_MODEL] = score_checkpoint(base_dir, "report")
            except RuntimeError as e:  # another architecture than the components'
                print(f"report: {base_dir} not scored: {str(e).splitlines()[0]}", file=sys.stderr)
            else:
                if progress:
                    print(f"report: scored {BASE_MODEL}", file=sys.stderr, flush=True)
        for name, sco in scored.items():
            report[name] = {
                "objective": objective(sco, base),
                "objectives": group_objectives(sco, base),
                "metrics": {k: m.value for k, m in sco.metrics.items()},
                "stderr": {k: m.stderr for k, m in sco.metrics.items()},
                "weights": {k: m.weight for k, m in sco.metrics.items()},  # 0: shown, not counted
                "w": as_dict(mixes[name], ctx.domains) if name in mixes else None,
            }
    rec = report.get("recommended", {}).get("objective")
    out = {
        "domains": ctx.domains,
        "w": as_dict(w, ctx.domains),
        "r": as_dict(ctx.ratios(w), ctx.domains),
        "predicted_objective": info["predicted"],
        "surrogate": info,
        "best_trial": {"number": best.number, "objective": best.user_attrs.get("objective")},
        "report": report,
        "beats": {
            b: bool(rec is not None and rec > report[b]["objective"])
            for b in ("uniform", "prior")
            if b in report
        },
        "margin": {
            b: rec - report[b]["objective"] for b in ("uniform", "prior") if b in report and rec is not None
        },
        "provenance": provenance(inputs),
    }
    write_json_atomic(path, out)
    return out
