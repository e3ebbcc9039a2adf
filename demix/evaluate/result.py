"""What one evaluation returns, and standard errors from per-document values (pure: no lm-eval).

lm-eval's fast path (``bootstrap_iters=0``) leaves every stderr empty and bits-per-byte never has
one; demix computes them from the per-document values instead: the closed form for means (what
lm-eval itself uses), the delta method for ratio metrics (bits per byte, perplexities), and a small
seeded bootstrap for anything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from demix.evaluate.spec import Direction, EvalRole, SpecRole, direction_of


@dataclass(frozen=True)
class Metric:
    """One task's score on one model: the one metric type from evaluation through search and validation.

    Example::

        Metric(0.61, 0.02, "higher", "math", "acc,none", n=200, role="search")

    Attributes:
        value: the metric's value (e.g. accuracy, bits per byte).
        stderr: its standard error over documents (``None`` with fewer than two documents).
        direction: ``higher`` or ``lower`` is better.
        group: capability group the task belongs to.
        metric: the lm-eval key it was read from (``acc,none``).
        n: documents evaluated.
        role: the task's role (search, report, both, loss).
        weight: weight inside its group's mean.
    """

    value: float
    stderr: float | None
    direction: Direction
    group: str
    metric: str = ""
    n: int = 0
    role: SpecRole = "search"
    weight: float = 1.0

    def to_json(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """Every field, or only ``fields`` in that order (the part of a metric a file records)."""
        d = asdict(self)
        return d if fields is None else {f: d[f] for f in fields}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Metric:
        """A metric from any file that records one (missing fields take their defaults; directions
        written ``max``/``min`` by earlier versions read as ``higher``/``lower``)."""
        return cls(
            d["value"],
            d.get("stderr"),
            direction_of(d.get("direction", "higher")),
            d.get("group") or "general",
            **{k: d[k] for k in ("metric", "n", "role", "weight") if k in d},
        )


@dataclass
class EvalResult:
    """Scores of one model on the tasks of one role.

    Attributes:
        metrics: task -> :class:`Metric` for every task that counts in the objective.
        bpb: domain -> bits per byte on its held-out text (the law's ``loss:<domain>``).
        losses: task -> :class:`Metric` of the bits-per-byte tasks (with stderr).
        details: task -> lm-eval metric key -> ``{"value", "stderr"}``: every metric lm-eval reported.
        seconds: wall time of the evaluation.
        role: the role evaluated (search, report, all).
        items: task -> (lm-eval aggregation name, per-document values) of each leaf task's metric,
            so two models scored on the same documents compare pairwise
            (:func:`resample_value`); written to JSON only when asked (``with_items``).
    """

    metrics: dict[str, Metric]
    bpb: dict[str, float] = field(default_factory=dict)
    losses: dict[str, Metric] = field(default_factory=dict)
    details: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    seconds: float = 0.0
    role: EvalRole = "search"
    items: dict[str, tuple[str, list[Any]]] = field(default_factory=dict)

    def values(self) -> dict[str, float]:
        """Task -> value of the scored tasks (what baselines store)."""
        return {k: m.value for k, m in self.metrics.items()}

    def to_json(self, *, with_items: bool = False) -> dict[str, Any]:
        out = {
            "role": self.role,
            "seconds": self.seconds,
            "metrics": {k: m.to_json() for k, m in self.metrics.items()},
            "bpb": dict(self.bpb),
            "losses": {k: m.to_json() for k, m in self.losses.items()},
            "details": self.details,
        }
        if with_items:
            out["items"] = {k: {"aggregation": a, "values": list(v)} for k, (a, v) in self.items.items()}
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EvalResult:
        return cls(
            metrics={k: Metric.from_json(m) for k, m in d["metrics"].items()},
            bpb={k: float(v) for k, v in d.get("bpb", {}).items()},
            losses={k: Metric.from_json(m) for k, m in d.get("losses", {}).items()},
            details=dict(d.get("details", {})),
            seconds=float(d.get("seconds", 0.0)),
            role=d.get("role", "search"),
            items={k: (str(v["aggregation"]), list(v["values"])) for k, v in d.get("items", {}).items()},
        )


# ---- standard errors from per-document values ----------------------------------------------------


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of a mean: sample std (ddof=1) / sqrt(n), as lm-eval's ``mean_stderr``."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    return float(x.std(ddof=1) / math.sqrt(x.size))


def ratio_stderr(pairs: Sequence[tuple[float, float]]) -> float | None:
    """Delta-method standard error of R = sum(a) / sum(b) over documents (a, b).

    Bits per byte is -R/ln 2 with a the log-likelihood and b the bytes of each document.
    """
    if len(pairs) < 2:
        return None
    a, b = (np.asarray(v, dtype=np.float64) for v in zip(*pairs, strict=True))
    if b.sum() == 0:
        return None
    r = a.sum() / b.sum()
    resid = a - r * b
    n = a.size
    return float(math.sqrt((resid**2).sum() / (n * (n - 1))) / b.mean())


def bootstrap_stderr(
    agg: Callable[[list[Any]], float], items: Sequence[Any], iters: int, seed: int = 0
) -> float | None:
    """Standard deviation of ``agg`` over ``iters`` resamples of the documents (seeded)."""
    if len(items) < 2 or iters <= 1:
        return None
    rng = np.random.default_rng(seed)
    n = len(items)
    draws = []
    for _ in range(iters):
        idx = rng.integers(0, n, size=n)
        draws.append(float(agg([items[i] for i in idx])))
    return float(np.std(draws, ddof=1))


def stderr_for(
    aggregation: str, value: float, items: Sequence[Any], agg: Callable[[list[Any]], float] | None, iters: int
) -> float | None:
    """The stderr of a metric from its per-document ``items``, by lm-eval aggregation name."""
    if not items:
        return None
    if aggregation in ("mean", "nanmean"):
        vals = [float(v) for v in items if not (aggregation == "nanmean" and v != v)]
        return mean_stderr(vals)
    if aggregation == "bits_per_byte":
        se = ratio_stderr(items)
        return None if se is None else se / math.log(2)
    if aggregation == "weighted_perplexity":  # exp(-R): delta method
        se = ratio_stderr(items)
        return None if se is None else abs(value) * se
    if agg is not None and iters > 1:
        try:
            return bootstrap_stderr(agg, list(items), iters)
        except Exception:  # an aggregation that cannot take a resample (e.g. needs all references)
            return None
    return None


def resample_value(aggregation: str, items: Sequence[Any] | np.ndarray, idx: np.ndarray) -> float | None:
    """A metric's value on the documents ``idx`` (a resample), by lm-eval aggregation name; None for
    an aggregation this does not know how to recompute."""
    if not len(items):
        return None
    if aggregation in ("mean", "nanmean"):
        x = np.asarray(items, dtype=np.float64)[idx]
        return float(np.nanmean(x) if aggregation == "nanmean" else np.mean(x))
    if aggregation in ("bits_per_byte", "weighted_perplexity"):
        ab = np.asarray(items, dtype=np.float64)[idx]
        if ab.ndim != 2 or ab[:, 1].sum() == 0:
            return None
        r = ab[:, 0].sum() / ab[:, 1].sum()
        return float(-r / math.log(2)) if aggregation == "bits_per_byte" else float(math.exp(-r))
    return None
