"""The check: every method's mixture trained for real and scored on one scale (pure).

The scale is the objective's rule (:func:`demix.evaluate.scores.objective`: per task 0 at the worst
anchor, 1 at the best, weighted mean per group, mean over groups) with fixed anchors that no
method's answer moves (the stage picks them: the search's frozen baselines on the report tasks, else
the base model and the prior- and uniform-mixture check models). The objective is affine in the task
values, so each score's interval follows from each task's standard error (a parametric bootstrap
over evaluation noise, pooled over seeds when several models per mixture were trained), and the
winner's lead from resampling the same documents for every model (:func:`paired_draws`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from demix.evaluate.result import EvalResult
from demix.evaluate.scores import ValuesLike, loss_slopes, objective, objective_coefficients
from demix.util.stats import rankdata, spearman

Anchors = Mapping[str, ValuesLike]  # the scale's fixed ends: name -> a result or task -> value


def score(result: EvalResult, anchors: Anchors) -> float:
    """One trained model's score on the comparison's scale (higher is better)."""
    return objective(result, dict(anchors))


def interval(results: Sequence[EvalResult], anchors: Anchors, replicates: int, seed: int) -> dict[str, float]:
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


def paired_draws(
    results: Mapping[str, Sequence[EvalResult]], anchors: Anchors, replicates: int, seed: int
) -> dict[str, np.ndarray]:
    """Method -> (replicates,) scores on resampled documents, one resample shared by every method.

    Every check model is scored on the same documents, so per replicate and task one draw of
    document indices serves every model: a hard document is hard for all of them and differences keep
    only what differs between the models (a paired bootstrap). The scale is affine in the task values
    with fixed anchors, so a model's score moves by Σ_t slope_t·(resampled value_t − value_t). A
    method's seeds are picked at random per replicate; a task without per-document values (a group,
    an aggregation that cannot be recomputed) is perturbed by its stderr, independently per model.
    """
    from demix.evaluate.result import resample_value

    rng = np.random.default_rng(seed)
    prep = {
        m: [(score(r, anchors), objective_coefficients(r, dict(anchors)), r) for r in rs]
        for m, rs in results.items()
    }
    arrays: dict[tuple[str, int, str], tuple[str, np.ndarray]] = {}
    n_docs: dict[str, int] = {}
    for m, models in prep.items():
        for i, (_, coefs, r) in enumerate(models):
            for t in coefs:
                if t in r.items and len(r.items[t][1]) > 1:
                    arrays[m, i, t] = (r.items[t][0], np.asarray(r.items[t][1], dtype=np.float64))
                    n_docs.setdefault(t, len(r.items[t][1]))
    out = {m: np.empty(replicates) for m in prep}
    for b in range(replicates):
        idx = {t: rng.integers(0, n, size=n) for t, n in n_docs.items()}
        for m, models in prep.items():
            i = int(rng.integers(len(models))) if len(models) > 1 else 0
            v, coefs, r = models[i]
            for t, slope in coefs.items():
                agg, arr = arrays.get((m, i, t), ("", np.zeros(0)))
                new = resample_value(agg, arr, idx[t]) if len(arr) == n_docs.get(t, -1) else None
                if new is None:
                    v += slope * float(rng.standard_normal()) * (r.metrics[t].stderr or 0.0)
                else:
                    v += slope * (new - r.metrics[t].value)
            out[m][b] = v
    return out


def lead(draws: Mapping[str, np.ndarray], values: Mapping[str, float]) -> dict[str, Any]:
    """The best method's lead over each other one: the difference in trained score and its paired
    95% interval (from :func:`paired_draws`)."""
    best = max(values, key=lambda m: (values[m], m))
    vs = {}
    for m in values:
        if m == best:
            continue
        d = np.asarray(draws[best]) - np.asarray(draws[m])
        vs[m] = {
            "diff": float(values[best] - values[m]),
            "low": float(np.quantile(d, 0.025)) if d.size else float("nan"),
            "high": float(np.quantile(d, 0.975)) if d.size else float("nan"),
        }
    return {"best": best, "vs": vs}


def verdict(rows: Mapping[str, Mapping[str, Any]], lead_: Mapping[str, Any] | None = None) -> str:
    """Which method won and by how much, in one sentence (``rows``: method -> {trained, rank}).

    A method is said to have won only when the paired 95% interval of its lead over the runner-up
    (``lead_``, :func:`lead`) lies above 0; otherwise the two are called level, so a team does not
    switch methods on a lead the evaluation noise could have made.
    """
    order = sorted(rows, key=lambda m: (rows[m]["rank"], m))
    best = order[0]
    b = rows[best]["trained"]
    if len(order) == 1:
        return f"{best} is the only method compared (trained score {b['value']:.3f})."
    second = order[1]
    s = rows[second]["trained"]
    gap = float(b["value"]) - float(s["value"])
    scores = f"trained score {b['value']:.3f} vs {s['value']:.3f} for {second}, the runner-up (+{gap:.3f})"
    iv = (lead_ or {}).get("vs", {}).get(second) if (lead_ or {}).get("best") == best else None
    if iv is None or not (np.isfinite(iv["low"]) and np.isfinite(iv["high"])):
        return f"{best} scored highest: {scores} (no paired interval: compare.check.bootstrap is 0)."
    span = f"paired 95% interval of the lead [{iv['low']:+.3f}, {iv['high']:+.3f}]"
    if iv["low"] > 0:
        return f"{best} won: {scores}; {span} excludes 0: a clear lead."
    return (
        f"{best} and {second} are level: {scores}, but the {span} includes 0, "
        "so the lead is within the evaluation noise."
    )


def loss_weights(
    result: EvalResult, anchors: Anchors, domains: Sequence[str], task_domains: Mapping[str, str]
) -> tuple[np.ndarray, str]:
    """(K,) weights s under which Σ s_d L_d ranks mixtures as the check's scale does, and how.

    The scale is affine in its tasks' values; its bits-per-byte tasks (``task_domains``: task ->
    the domain whose held-out bits per byte it measures, from the task specs) give minus the slopes,
    normalised — so the law optimises, and predicts the order of, what the check scores (a domain
    the objective does not count gets 0). Without such a task: equal weights.
    """
    s, others = loss_slopes(result, dict(anchors), task_domains, domains)
    if s.sum() <= 0:
        return np.full(
            len(domains), 1.0 / len(domains)
        ), "every domain's loss equally (no bits-per-byte task)"
    how = "the check's objective (its bits-per-byte tasks, weighted as it weighs them)"
    if others:
        how += f"; its {len(others)} other task(s) are not a function of these losses"
    return s / s.sum(), how
