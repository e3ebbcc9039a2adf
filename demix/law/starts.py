"""Where the mixing-law fit starts: the paper's multi-start grid, and how many of its starts to run (pure).

The grid (Ye et al.) is log c × log k × random t; its 6000 starts per domain were sized for 5
domains and ~26 mixtures. A start's iteration costs ~ n·(K+2)² (the normal equations), while many
mixtures per parameter leave the Huber loss few minima, so :func:`scaled_starts` runs a seeded
random subset where ``law.start_budget`` is exceeded (docs/perf/law.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from demix.config.law import LawConfig


def make_starts(cfg: LawConfig, K: int, diagonal: int | None, rng: np.random.Generator) -> np.ndarray:
    """The paper's grid: log c × log k × random t (t_ii ~ -U(0,1), others ~ 0.1·U(0,1)) -> (S, K+2)."""
    lc = np.linspace(*cfg.log_c_grid[:2], int(cfg.log_c_grid[2]))
    lk = np.linspace(*cfg.log_k_grid[:2], int(cfg.log_k_grid[2]))
    ga, gb = np.meshgrid(lc, lk, indexing="ij")
    a = np.repeat(ga.ravel(), cfg.random_t)
    b = np.repeat(gb.ravel(), cfg.random_t)
    t = 0.1 * rng.uniform(0.0, 1.0, (a.size, K))
    if diagonal is not None:
        t[:, diagonal] = -rng.uniform(0.0, 1.0, a.size)
    return np.column_stack([a, b, t])


def scaled_starts(count: int, floor: int, n: int, K: int, budget: float) -> int:
    """How many of ``count`` starts to run on n mixtures of K domains (``law.start_budget``).

    Each start's iteration costs ~ n·(K+2)² (the normal equations), while many mixtures per
    parameter leave the Huber loss few minima: on RegMix's 512 × 17, 200 random starts of the
    6000 reach the full grid's optimum to 3e-7 relative at p = 1 and 1/2 (docs/perf/law.md).
    """
    afford = int(budget // max(1, n * (K + 2) ** 2))
    return min(count, max(floor, afford))


def start_grid(cfg: LawConfig, K: int, diag: list[int | None], p: float, seed: int) -> np.ndarray:
    """The start grid (V, S, ·) for exponent p; for p = 1, log k folded into t."""
    rng = np.random.default_rng(seed)
    starts = np.stack([make_starts(cfg, K, d, rng) for d in diag])  # (V, S, K+2)
    if p != 1.0:
        return starts
    # Σ_j r_j = 1, so log k is a common shift of t: fold it in (a start (a, b, t) -> (a, t + b)).
    return np.concatenate([starts[..., :1], starts[..., 2:] + starts[..., 1:2]], axis=-1)
