"""DeMix's surrogate: a LightGBM regressor (RegMix's settings) over a pool of candidate mixtures.

The pool follows the DeMix code: Dirichlet draws centred on a prior of token counts raised to
``prior_power`` (0.7), concentration drawn from log-spaced values in [0.5, 5], each domain capped at
``max_prior_multiple`` (4x) its prior, weights below 2e-4 zeroed, rounded to multiples of 2e-4,
de-duplicated; then repaired onto the user's constraints. The next round is the top predictions not
yet scored; the recommended mixture is the mean of the top-k predictions.

Pure: arrays in, arrays out. :func:`recommend_topk` is what export calls for bootstrap intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from demix.config.search import DemixSamplerConfig
from demix.mixture.constraints import Constraints

GRID = 2e-4  # pool weights are multiples of this; smaller ones are zeroed


@dataclass(frozen=True)
class Surrogate:
    """A fitted regressor w -> objective."""

    booster: Any  # lightgbm.Booster

    def predict(self, W: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(np.atleast_2d(W)), dtype=np.float64)


def pool_prior(token_counts: np.ndarray, power: float) -> np.ndarray:
    p = np.asarray(token_counts, dtype=np.float64) ** power
    return p / p.sum()


def candidate_pool(
    prior: np.ndarray, cfg: DemixSamplerConfig, constraints: Constraints, seed: int
) -> np.ndarray:
    """(N <= pool_size, K) distinct feasible candidate mixtures around ``prior``."""
    rng = np.random.default_rng(seed)
    k = len(prior)
    lo, hi, n = cfg.concentrations
    scales = np.logspace(np.log10(lo), np.log10(hi), int(n))
    cap = cfg.max_prior_multiple * prior
    kept: list[np.ndarray] = []
    have = 0
    for _ in range(64):  # rejection of over-cap draws; stop when the pool is full
        c = rng.choice(scales, size=(cfg.pool_size, 1))
        W = rng.gamma(np.maximum(prior * c, 1e-3), size=(cfg.pool_size, k))
        W = W / np.maximum(W.sum(axis=1, keepdims=True), 1e-300)
        W = W[np.all(cap >= W, axis=1)]
        kept.append(W)
        have += len(W)
        if have >= cfg.pool_size:
            break
    W = np.concatenate(kept)[: cfg.pool_size]
    W = np.where(W < GRID, 0.0, W)
    W = np.round(W / GRID) * GRID
    W = W[W.sum(axis=1) > 0]
    W = W / W.sum(axis=1, keepdims=True)
    W = constraints.repair(W)
    W = W[constraints.feasible(W)]
    return _dedup(W)


def _keys(W: np.ndarray) -> np.ndarray:
    return np.round(np.atleast_2d(W) / GRID).astype(np.int64)


def _dedup(W: np.ndarray) -> np.ndarray:
    if len(W) == 0:
        return W
    _, idx = np.unique(_keys(W), axis=0, return_index=True)
    return W[np.sort(idx)]


def fit(W: np.ndarray, y: np.ndarray, cfg: DemixSamplerConfig, seed: int) -> Surrogate:
    """LightGBM regression with RegMix's settings (boosting rounds and learning rate from config).

    Leaves may hold few samples because a search has tens to hundreds of points, not RegMix's 512.
    """
    import lightgbm as lgb

    W = np.asarray(W, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(y)
    n = int(ok.sum())
    params = {
        "objective": "regression",
        "learning_rate": cfg.learning_rate,
        "num_leaves": 31,
        "min_data_in_leaf": max(1, min(20, n // 8)),
        "min_data_in_bin": 1,
        "feature_pre_filter": False,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    data = lgb.Dataset(W[ok], y[ok], params={"min_data_in_bin": 1, "verbosity": -1})
    return Surrogate(lgb.train(params, data, num_boost_round=cfg.num_boost_round))


def propose(
    W: np.ndarray, y: np.ndarray, pool: np.ndarray, n: int, cfg: DemixSamplerConfig, seed: int
) -> np.ndarray:
    """The next round: the n pool candidates with the highest predictions not already scored."""
    model = fit(W, y, cfg, seed)
    pred = model.predict(pool)
    seen = {tuple(k) for k in _keys(W)}
    out = []
    for i in np.argsort(-pred, kind="stable"):
        if tuple(_keys(pool[i])[0]) in seen:
            continue
        out.append(pool[i])
        if len(out) == n:
            break
    return np.array(out).reshape(-1, pool.shape[1])


def recommend_topk(
    W: np.ndarray,
    y: np.ndarray,
    prior: np.ndarray,
    cfg: DemixSamplerConfig,
    constraints: Constraints,
    seed: int,
    pool: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """DeMix's recommendation: fit the surrogate on (W, y), average the top-k predicted mixtures.

    Args:
        W: (n, K) scored merge weights. y: (n,) objective values (higher is better).
        prior: (K,) pool prior (token counts ** prior_power, normalised; see :func:`pool_prior`).
        cfg: ``search.demix`` settings (pool size, top_k, LightGBM settings).
        constraints: the feasible set; the mean of feasible mixtures is feasible (convex set).
        seed: pool and LightGBM seed; pass different seeds for bootstrap replicates.
        pool: candidates to rank (default: a fresh pool from ``prior``).

    Returns:
        The recommended w (K,) and info: its prediction, the top-k mean prediction, sizes.
    """
    if pool is None:
        pool = candidate_pool(prior, cfg, constraints, seed)
    model = fit(W, y, cfg, seed)
    pred = model.predict(pool)
    k = min(cfg.top_k, len(pool))
    top = np.argsort(-pred, kind="stable")[:k]
    w = constraints.repair(pool[top].mean(axis=0))
    info = {
        "predicted": float(model.predict(w)[0]),
        "top_k_mean_prediction": float(pred[top].mean()),
        "top_k": int(k),
        "pool": len(pool),
        "n_train": int(np.isfinite(np.asarray(y)).sum()),
        "best_observed": float(np.nanmax(y)),
    }
    return w, info
