"""The check: every method's mixture trained for real and scored on one scale (pure).

The scale is the objective's rule (:func:`demix.evaluate.scores.objective`: per task 0 at the worst
anchor, 1 at the best, weighted mean per group, mean over groups) with fixed anchors that no
method's answer moves: the base model and the prior- and uniform-mixture check models. The
objective is affine in the task values, so an interval follows from each task's standard error
(a parametric bootstrap over evaluation noise, pooled over seeds when several models per mixture
were trained).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from demix.evaluate.result import EvalResult
from demix.evaluate.scores import objective, objective_coefficients
from demix.util.stats import rankdata, spearman


def score(result: EvalResult, anchors: Mapping[str, EvalResult]) -> float:
    """One trained model's score on the comparison's scale (higher is better)."""
    return objective(result, dict(anchors))


def interval(
    results: Sequence[EvalResult], anchors: Mapping[str, EvalResult], replicates: int, seed: int
) -> dict[str, float]:
    """Mean score over the seeds' models and its 95% bootstrap interval.

    Each replicate picks one of the seeds' models at random and perturbs every counted task's value
    by a normal draw with that task's standard error (0 when it has none).
    """
    vals = np.array([score(r, anchors) for r in results], dtype=np.float64)
    out = {"value": float(np.mean(vals)), "low": float("nan"), "high": float("nan"), "seeds": vals.tolist()}
    if replicates <= 0 or not np.all(np.isfinite(vals)):
        return out
    rng = np.random.default_rng(seed)
    coefs = [objective_coefficients(r, dict(anchors)) for r in results]
    ses = [np.array([r.metrics[t].stderr or 0.0 for t in c]) for r, c in zip(results, coefs, strict=True)]
    cs = [np.array(list(c.values())) for c in coefs]
    draws = np.empty(replicates)
    for b in range(replicates):
        i = int(rng.integers(len(results))) if len(results) > 1 else 0
        draws[b] = vals[i] + float(cs[i] @ (rng.standard_normal(len(cs[i])) * ses[i]))
    out["low"], out["high"] = float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))
    return out


def ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Method -> rank by trained score (1 = best; ties share the mean rank)."""
    names = list(values)
    rk = rankdata(np.array([values[n] for n in names], dtype=np.float64), descending=True)
    return {n: float(r) for n, r in zip(names, rk, strict=True)}


def order_agreement(predicted: Mapping[str, float], trained: Mapping[str, float]) -> dict[str, Any]:
    """Whether a predictor's order of the methods' mixtures (higher = better) is the trained order."""
    names = [n for n in trained if n in predicted and np.isfinite(predicted[n]) and np.isfinite(trained[n])]
    p = np.array([predicted[n] for n in names], dtype=np.float64)
    t = np.array([trained[n] for n in names], dtype=np.float64)
    if len(names) < 2:
        return {"n": len(names), "spearman": float("nan"), "same_order": None}
    return {
        "n": len(names),
        "spearman": spearman(p, t),
        "same_order": bool(np.array_equal(rankdata(p, descending=True), rankdata(t, descending=True))),
        "same_best": names[int(np.argmax(p))] == names[int(np.argmax(t))],
        "predicted_best": names[int(np.argmax(p))],
        "trained_best": names[int(np.argmax(t))],
        "predicted": {n: float(v) for n, v in zip(names, p, strict=True)},
    }
