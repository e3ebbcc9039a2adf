"""DeMix's fidelity metrics: how well proxies rank and recover models really trained on the mixtures.

Pure: arrays in, dataclasses out (../REFERENCES.md, DeMix):

- Spearman rho between proxy and reference scores, per capability group, macro-averaged over groups.
- The same on the top quarter of references (the k = max(2, floor(0.25 n)) best by reference score):
  does the proxy still order the mixtures that matter?
- Capability recovery: proxy score / reference score per task (reference / proxy for lower-is-better
  metrics, so > 1 always means the proxy does better), averaged per group, then over groups.

Each comes with a percentile bootstrap interval over mixtures (resample mixtures with replacement).
A group's score for ranking is the mean over its tasks of the direction-signed task score
standardised within its own set (proxies and references separately): tasks on different scales
count equally, and each set is ranked by its own measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from demix.evaluate.result import Metric
from demix.evaluate.spec import Direction
from demix.util.stats import bootstrap, spearman


def top_k(n: int, fraction: float = 0.25) -> int:
    """DeMix's top-quarter size: k = max(2, floor(fraction * n))."""
    return max(2, int(np.floor(fraction * n)))


def top_spearman(proxy: np.ndarray, reference: np.ndarray, fraction: float = 0.25) -> float:
    """Spearman on the k best mixtures by reference score (higher is better)."""
    reference = np.asarray(reference, dtype=np.float64)
    k = min(top_k(len(reference), fraction), len(reference))
    idx = np.argsort(-np.where(np.isfinite(reference), reference, -np.inf), kind="stable")[:k]
    return spearman(np.asarray(proxy)[idx], reference[idx])


@dataclass(frozen=True)
class TaskTable:
    """Scores of n models on T tasks.

    Attributes:
        tasks: task names. values: (n, T). directions: ``higher``/``lower`` per task. groups: per task.
        weights: per task; a task of weight 0 (report-only accuracy) is not counted in its group's
            score or recovery, as the objective does not count it; it still gets its own Spearman.
    """

    tasks: list[str]
    values: np.ndarray
    directions: list[Direction]
    groups: list[str]
    weights: list[float] | None = None

    @property
    def group_names(self) -> list[str]:
        return sorted({g for g, c in zip(self.groups, self.counted, strict=True) if c})

    @property
    def counted(self) -> list[bool]:
        """Per task: whether it counts in its group (weight > 0)."""
        return [w > 0 for w in self.weights] if self.weights is not None else [True] * len(self.tasks)

    def columns(self, group: str) -> list[int]:
        """The counted tasks of ``group``."""
        return [i for i, (g, c) in enumerate(zip(self.groups, self.counted, strict=True)) if g == group and c]

    def signed(self) -> np.ndarray:
        """(n, T) values with lower-is-better tasks negated (higher is better everywhere)."""
        sign = np.array([1.0 if d == "higher" else -1.0 for d in self.directions])
        return self.values * sign

    def group_scores(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Group -> (n,) mean of its standardised signed tasks (standardised over ``rows``)."""
        v = self.signed() if rows is None else self.signed()[rows]
        mu, sd = np.nanmean(v, axis=0), np.nanstd(v, axis=0)
        z = np.where(sd > 0, (v - mu) / np.where(sd > 0, sd, 1.0), 0.0)
        out = {}
        for g in self.group_names:
            out[g] = z[:, self.columns(g)].mean(axis=1)
        return out


def metric_table(
    rows: Sequence[Mapping[str, Metric]],
    tasks: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> TaskTable:
    """A :class:`TaskTable` of per-model ``{task: Metric}`` mappings.

    Only tasks every model has are kept (in sorted order, or ``tasks``' order); directions and groups
    are the first model's. ``weights``: task -> weight in its group (default 1; 0: not counted in the
    group, see :class:`TaskTable`).
    """
    names = (
        list(tasks)
        if tasks is not None
        else sorted(set.intersection(*(set(r) for r in rows)) if rows else set())
    )
    first = rows[0] if rows else {}
    return TaskTable(
        tasks=names,
        values=np.array([[float(r[t].value) for t in names] for r in rows], dtype=np.float64).reshape(
            len(rows), len(names)
        ),
        directions=[first[t].direction for t in names],
        groups=[first[t].group for t in names],
        weights=[float((weights or {}).get(t, 1.0)) for t in names],
    )


def task_table(
    rows: Sequence[Mapping[str, Mapping[str, Any]]],
    tasks: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> TaskTable:
    """A :class:`TaskTable` from per-model ``{task: {"value", "direction", "group"}}`` mappings (the
    form ``validation.json`` records; see :meth:`Metric.from_json`), as :func:`metric_table`."""
    return metric_table([{t: Metric.from_json(m) for t, m in r.items()} for r in rows], tasks, weights)


def recovery(proxy: TaskTable, reference: TaskTable) -> dict[str, np.ndarray]:
    """Group -> (n,) capability recovery per mixture: mean over the group's tasks of the ratio."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            np.array([d == "higher" for d in proxy.directions]),
            proxy.values / reference.values,
            reference.values / proxy.values,
        )
    ratio = np.where(np.isfinite(ratio), ratio, np.nan)
    out = {}
    for g in proxy.group_names:
        out[g] = np.nanmean(ratio[:, proxy.columns(g)], axis=1)
    return out


@dataclass
class Fidelity:
    """Fidelity metrics, each as ``{"value", "low", "high"}`` (95% bootstrap over mixtures)."""

    n: int
    k_top: int
    spearman: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> ..., plus "macro"
    top_spearman: dict[str, dict[str, float]] = field(default_factory=dict)
    recovery: dict[str, dict[str, float]] = field(default_factory=dict)
    group_scores: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # proxy/reference
    task_spearman: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> ..., each task alone

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "k_top": self.k_top,
            "spearman": self.spearman,
            "top_spearman": self.top_spearman,
            "recovery": self.recovery,
            "group_scores": self.group_scores,
            "task_spearman": self.task_spearman,
        }


def _stats(proxy: TaskTable, reference: TaskTable, idx: np.ndarray, fraction: float) -> dict[str, float]:
    """Every metric on the mixtures ``idx`` (a bootstrap resample or all of them), flat keys."""
    pg, rg = proxy.group_scores(idx), reference.group_scores(idx)
    rec = recovery(proxy, reference)
    out: dict[str, float] = {}
    groups = proxy.group_names
    for g in groups:
        out[f"spearman:{g}"] = spearman(pg[g], rg[g])
        out[f"top:{g}"] = top_spearman(pg[g], rg[g], fraction)
        out[f"recovery:{g}"] = float(np.nanmean(rec[g][idx]))
    p, r = proxy.signed()[idx], reference.signed()[idx]
    for i, t in enumerate(proxy.tasks):
        out[f"task:{t}"] = spearman(p[:, i], r[:, i])
    for key in ("spearman", "top", "recovery"):
        vals = [out[f"{key}:{g}"] for g in groups]
        out[f"{key}:macro"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    return out


def fidelity(
    proxy: TaskTable,
    reference: TaskTable,
    *,
    replicates: int = 1000,
    seed: int = 0,
    top_fraction: float = 0.25,
) -> Fidelity:
    """DeMix's fidelity metrics of proxies against references on the same n mixtures (same rows).

    Raises:
        ValueError: the two tables do not have the same tasks and rows.
    """
    if proxy.tasks != reference.tasks or proxy.values.shape != reference.values.shape:
        raise ValueError("proxy and reference tables must hold the same tasks for the same mixtures")
    n = len(proxy.values)
    full = np.arange(n)
    point = _stats(proxy, reference, full, top_fraction)
    ci = (
        bootstrap(lambda idx: _stats(proxy, reference, idx, top_fraction), n, replicates, seed)
        if replicates
        else {}
    )

    def entry(key: str) -> dict[str, float]:
        lo, hi = ci.get(key, (float("nan"), float("nan")))
        return {"value": point[key], "low": lo, "high": hi}

    groups = [*proxy.group_names, "macro"]
    pg, rg = proxy.group_scores(), reference.group_scores()
    return Fidelity(
        n=n,
        k_top=min(top_k(n, top_fraction), n),
        spearman={g: entry(f"spearman:{g}") for g in groups},
        top_spearman={g: entry(f"top:{g}") for g in groups},
        recovery={g: entry(f"recovery:{g}") for g in groups},
        group_scores={g: {"proxy": pg[g].tolist(), "reference": rg[g].tolist()} for g in proxy.group_names},
        task_spearman={t: entry(f"task:{t}") for t in proxy.tasks},
    )
