"""Scores and objectives from evaluation results (pure: numbers in, numbers out; no lm-eval).

The objective (../DESIGN.md, "Objective"): every metric carries its direction; a task score is
normalised to [0, 1], higher better, 0 at the worst frozen baseline and 1 at the best (values beyond
are kept, so a proxy better than every baseline scores above 1); a group score is the weighted mean
of its tasks; the objective is the mean of the groups. A task on which every baseline scored the same
carries no scale and is left out. DeMix's own aggregation, the average rank over a finished set, and
the capability recovery used in validation are here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from demix.evaluate.result import EvalResult, Metric
from demix.util.stats import rankdata


class Scored(Protocol):
    """Task -> :class:`Metric` of one model: an :class:`EvalResult`, or the search's ``Score``."""

    @property
    def metrics(self) -> Mapping[str, Metric]: ...


ValuesLike = Scored | Mapping[str, float]


def _values(x: ValuesLike) -> dict[str, float]:
    if isinstance(x, Mapping):
        return {k: float(v) for k, v in x.items()}
    return {k: m.value for k, m in x.metrics.items()}


def _sign(direction: str) -> float:
    return -1.0 if direction.lower().startswith(("lower", "min")) else 1.0


def task_bounds(
    baselines: Mapping[str, ValuesLike], directions: Mapping[str, str]
) -> dict[str, tuple[float, float]]:
    """Task -> (worst, best) baseline value in higher-is-better units (lower-better values negated)."""
    out: dict[str, tuple[float, float]] = {}
    vals = [_values(b) for b in baselines.values()]
    for task, direction in directions.items():
        s = _sign(direction)
        xs = [s * v[task] for v in vals if task in v and np.isfinite(v[task])]
        if xs:
            out[task] = (min(xs), max(xs))
    return out


def normalized_tasks(result: Scored, baselines: Mapping[str, ValuesLike]) -> dict[str, float]:
    """Task -> score in baseline units: 0 at the worst baseline, 1 at the best, higher better.

    Tasks without a baseline, with a non-finite value, or on which all baselines agree are left out.
    """
    directions = {k: m.direction for k, m in result.metrics.items()}
    bounds = task_bounds(baselines, directions)
    out: dict[str, float] = {}
    for task, m in result.metrics.items():
        if task not in bounds or not np.isfinite(m.value):
            continue
        worst, best = bounds[task]
        if best - worst <= 0:
            continue
        out[task] = (_sign(m.direction) * m.value - worst) / (best - worst)
    return out


def group_objectives(result: Scored, baselines: Mapping[str, ValuesLike]) -> dict[str, float]:
    """Group -> weighted mean of its tasks' normalised scores, groups sorted by name.

    Tasks of weight 0 are shown elsewhere but not counted; a group with no counted task is left out.
    """
    acc = _counted(result, baselines)
    return {g: float(sum(v * w for _, v, w in acc[g]) / sum(w for *_, w in acc[g])) for g in sorted(acc)}


def _counted(
    result: Scored, baselines: Mapping[str, ValuesLike]
) -> dict[str, list[tuple[str, float, float]]]:
    """Group -> (task, normalised score, weight) of every task the objective counts, in task order."""
    acc: dict[str, list[tuple[str, float, float]]] = {}
    for task, v in normalized_tasks(result, baselines).items():
        m = result.metrics[task]
        if m.weight > 0:
            acc.setdefault(m.group, []).append((task, v, m.weight))
    return acc


def objective_coefficients(result: Scored, baselines: Mapping[str, ValuesLike]) -> dict[str, float]:
    """Task -> the objective's slope in that task's value (the objective's per-task weighting).

    The objective is affine in the task values: task t of group g enters as
    sign_t · weight_t / (Σ weights of g's counted tasks) / (number of groups) / (best_t - worst_t),
    sign_t = -1 for a lower-is-better task. The tasks counted are those :func:`group_objectives`
    counts for ``result``; the others are absent. The law uses this to weigh its per-domain losses
    as the search's objective weighs the matching bits-per-byte tasks.
    """
    acc = _counted(result, baselines)
    directions = {task: result.metrics[task].direction for members in acc.values() for task, *_ in members}
    bounds = task_bounds(baselines, directions)
    out: dict[str, float] = {}
    for members in acc.values():
        total = sum(w for *_, w in members)
        for task, _, w in members:
            worst, best = bounds[task]
            out[task] = _sign(directions[task]) * (w / total / len(acc) / (best - worst))
    return out


def loss_slopes(
    result: Scored,
    baselines: Mapping[str, ValuesLike],
    task_domains: Mapping[str, str],
    domains: Sequence[str],
) -> tuple[np.ndarray, list[str]]:
    """(K,) minus the objective's slopes in each domain's held-out loss, and the tasks it counts that
    are no domain's loss.

    ``task_domains`` maps a bits-per-byte task to the domain whose loss it measures. Σ s_d L_d (s
    normalised) then ranks mixtures as the objective's loss part does: how the law weighs its
    per-domain losses to match a search or a check. A domain the objective does not count gets 0;
    the other tasks (a benchmark's accuracy) are returned by name, sorted.
    """
    s = np.zeros(len(domains))
    others = []
    for task, slope in objective_coefficients(result, baselines).items():
        d = task_domains.get(task)
        if d is not None and d in domains:
            s[list(domains).index(d)] -= slope  # a lower loss raises the objective: slope < 0
        else:
            others.append(task)
    return s, sorted(others)


def objective(result: Scored, baselines: Mapping[str, ValuesLike]) -> float:
    """Mean over capability groups of the group objectives (NaN when no task has a scale)."""
    groups = group_objectives(result, baselines)
    return float(np.mean(list(groups.values()))) if groups else float("nan")


def average_rank(
    results: Sequence[ValuesLike],
    directions: Mapping[str, str] | None = None,
    groups: Mapping[str, str] | None = None,
) -> np.ndarray:
    """DeMix's aggregation over a finished set: per task rank (1 = best), averaged within each
    group, then over groups. Lower is better. Tasks missing from any result are skipped.

    Args:
        results: one result (or task -> value mapping) per model of the set.
        directions: task -> higher/lower (default: from the first result's metrics; else higher).
        groups: task -> group (default: from the first result's metrics; else one group).

    Returns:
        One average rank per result, in order.
    """
    vals = [_values(r) for r in results]
    if not vals:
        return np.zeros(0)
    first = results[0]
    if directions is None:
        directions = (
            {k: m.direction for k, m in first.metrics.items()} if isinstance(first, EvalResult) else {}
        )
    if groups is None:
        groups = {k: m.group for k, m in first.metrics.items()} if isinstance(first, EvalResult) else {}
    tasks = sorted(set.intersection(*(set(v) for v in vals)))
    by_group: dict[str, list[np.ndarray]] = {}
    for t in tasks:
        x = np.array([_sign(directions.get(t, "higher")) * v[t] for v in vals], dtype=np.float64)
        by_group.setdefault(groups.get(t, "all"), []).append(rankdata(x, descending=True))
    if not by_group:
        return np.full(len(vals), np.nan)
    per_group = [np.mean(np.stack(r), axis=0) for _, r in sorted(by_group.items())]
    return np.mean(np.stack(per_group), axis=0)


def capability_recovery(proxy: float, reference: float, direction: str = "higher") -> float:
    """How much of a reference model's score a proxy recovers: proxy/reference (reference/proxy
    for a lower-is-better metric), so 1 means equal and below 1 means the proxy is worse."""
    num, den = (reference, proxy) if _sign(direction) < 0 else (proxy, reference)
    return float(num / den) if den != 0 else float("nan")


def group_recovery(proxy: EvalResult, reference: EvalResult) -> dict[str, float]:
    """Group -> mean capability recovery over the tasks both results scored."""
    acc: dict[str, list[float]] = {}
    for task, m in proxy.metrics.items():
        if task in reference.metrics:
            acc.setdefault(m.group, []).append(
                capability_recovery(m.value, reference.metrics[task].value, m.direction)
            )
    return {g: float(np.mean(v)) for g, v in sorted(acc.items())}
