"""The three recommendations side by side, their bootstrap intervals, the Pareto set, the beta edge.

Pure: arrays in, dataclasses out. A recommendation is a mixture in merge weights w (what proxies
were merged with) and in data ratios r = beta*e_G + (1-beta)*w (what a data team trains on).

- ``surrogate_topk``: DeMix's choice, the mean of the surrogate's top-k predicted mixtures.
- ``best_trial``: the best proxy actually measured.
- ``law``: the optimum of the data-mixing law fitted to the trials' per-domain losses.

Intervals are percentile bootstrap intervals over trials: resample the trials with replacement,
redo the recommendation, and take the 2.5/97.5 percentiles of each share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CHOICES = ("surrogate_topk", "best_trial", "law")


@dataclass
class Candidate:
    """One recommended mixture.

    Attributes:
        name: one of :data:`CHOICES`.
        r: (K,) data ratios, summing to 1.
        w: (K,) merge weights it stands for; ``None`` when r has less general data than beta allows
            (a law optimum can), so no proxy represents it.
        predicted: what each model says about it (``surrogate_objective``, ``measured_objective``,
            ``law_loss``), only the ones that apply.
        interval: (K, 2) bootstrap 95% interval of each share of r; ``None`` when not computed.
        note: one line on how it was obtained.
    """

    name: str
    r: np.ndarray
    w: np.ndarray | None
    predicted: dict[str, float] = field(default_factory=dict)
    interval: np.ndarray | None = None
    note: str = ""

    def to_json(self, domains: list[str]) -> dict[str, Any]:
        def d(v: np.ndarray) -> dict[str, float]:
            return {n: float(x) for n, x in zip(domains, v, strict=True)}

        return {
            "name": self.name,
            "r": d(self.r),
            "w": d(self.w) if self.w is not None else None,
            "predicted": {k: float(v) for k, v in self.predicted.items()},
            "interval": (
                {n: [float(lo), float(hi)] for n, (lo, hi) in zip(domains, self.interval, strict=True)}
                if self.interval is not None
                else None
            ),
            "note": self.note,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], domains: list[str]) -> Candidate:
        def v(m: dict[str, float]) -> np.ndarray:
            return np.array([float(m[n]) for n in domains], dtype=np.float64)

        iv = d.get("interval")
        return cls(
            name=str(d["name"]),
            r=v(d["r"]),
            w=v(d["w"]) if d.get("w") is not None else None,
            predicted={k: float(x) for k, x in (d.get("predicted") or {}).items()},
            interval=np.array([iv[n] for n in domains], dtype=np.float64) if iv else None,
            note=str(d.get("note", "")),
        )


def bootstrap_interval(
    fn: Callable[[np.ndarray, int], np.ndarray | None],
    n: int,
    replicates: int,
    seed: int,
    level: float = 0.95,
) -> np.ndarray | None:
    """Percentile bootstrap interval of a vector statistic over n resampled rows.

    Args:
        fn: ``fn(indices, replicate) -> (K,) vector`` for one resample (``None`` to skip it).
        n: rows to resample from. replicates: resamples. seed: the generator's seed (same seed,
            same interval). level: coverage of the interval.

    Returns:
        (K, 2) lower and upper bounds, or ``None`` with fewer than two usable replicates.
    """
    if replicates < 2 or n < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = []
    for b in range(replicates):
        idx = rng.integers(0, n, size=n)
        out = fn(idx, b)
        if out is not None and np.all(np.isfinite(out)):
            draws.append(np.asarray(out, dtype=np.float64))
    if len(draws) < 2:
        return None
    a = (1.0 - level) / 2.0
    stack = np.stack(draws)
    return np.column_stack([np.quantile(stack, a, axis=0), np.quantile(stack, 1.0 - a, axis=0)])


def pareto_front(Y: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``Y`` (n, G) that no other row dominates (all objectives maximised)."""
    Y = np.asarray(Y, dtype=np.float64)
    keep = []
    for i in range(len(Y)):
        if not np.all(np.isfinite(Y[i])):
            continue
        others = np.delete(Y, i, axis=0)
        others = others[np.all(np.isfinite(others), axis=1)]
        dominated = np.any(np.all(others >= Y[i], axis=1) & np.any(others > Y[i], axis=1))
        if not dominated:
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def best_index(objective: np.ndarray) -> int:
    """The row with the highest finite objective (the first one on ties)."""
    y = np.where(np.isfinite(objective), objective, -np.inf)
    return int(np.argmax(y))


def edge_warning(
    r: np.ndarray,
    domains: list[str],
    general: str,
    beta: float,
    tolerance: float,
    top_w_general: np.ndarray | None = None,
) -> str | None:
    """A sentence when the search pushes against the edge that beta imposes, else ``None``.

    Components were trained on (1-beta)*candidate + beta*general, so no proxy has less than beta
    general data. When the recommended general share sits at that floor (or the best trials put no
    merge weight on the general component), a mixture with less general data might be better but
    cannot be evaluated with these components.

    Args:
        r: the recommended data ratios. top_w_general: the general merge weight of the best trials.
    """
    if beta <= 0:
        return None
    g = domains.index(general)
    at_edge = r[g] - beta <= tolerance
    top_at_edge = (
        top_w_general is not None and len(top_w_general) > 0 and np.mean(top_w_general <= tolerance) >= 0.5
    )
    if not (at_edge or top_at_edge):
        return None
    return (
        f"the search pushes against the beta edge: the recommended {general} share is {r[g]:.3f} and "
        f"proxies cannot represent less than train.beta={beta:g} {general} data (components were trained "
        f"on {1 - beta:g}*candidate + {beta:g}*{general}); a mixture with less {general} data may be "
        "better but was not evaluated — retrain the components with a smaller train.beta to explore it"
    )
