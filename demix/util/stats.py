"""Ranks, Spearman's rho and a percentile bootstrap: the one copy every stage uses.

Validation ranks proxies against references, the law's cross-check ranks its predictions against the
trials, and DeMix's aggregation ranks mixtures per task; they must agree on ties and on what a
constant column means (no ranking: NaN, never 0).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def rankdata(x: np.ndarray, *, descending: bool = False) -> np.ndarray:
    """Average ranks, 1-based (ties share their mean rank); ``descending`` ranks the largest 1."""
    from scipy.stats import rankdata as _rankdata

    x = np.asarray(x, dtype=np.float64)
    return np.asarray(_rankdata(-x if descending else x, method="average"), dtype=np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho over the pairs where both are finite; NaN when fewer than 2 or a side is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return float("nan")
    ra, rb = rankdata(a[ok]), rankdata(b[ok])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def bootstrap(
    stat: Callable[[np.ndarray], dict[str, float]], n: int, replicates: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Percentile 95% interval of every key of ``stat(indices)`` over ``replicates`` resamples of n."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(replicates):
        for k, v in stat(rng.integers(0, n, size=n)).items():
            draws.setdefault(k, []).append(v)
    out = {}
    for k, vs in draws.items():
        a = np.asarray(vs, dtype=np.float64)
        a = a[np.isfinite(a)]
        out[k] = (
            (float(np.quantile(a, 0.025)), float(np.quantile(a, 0.975))) if len(a) >= 2 else (np.nan, np.nan)
        )
    return out
