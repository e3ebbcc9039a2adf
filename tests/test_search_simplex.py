"""Pure parts of the search: simplex maps, constraints, the DeMix candidate pool and surrogate."""

from __future__ import annotations

import numpy as np
import pytest

from demix.config.search import ConstraintsConfig, DemixSamplerConfig
from demix.errors import ConfigError
from demix.mixture.constraints import Constraints, build_constraints
from demix.search.samplers import round_of
from demix.search.simplex import Simplex
from demix.search.surrogate import GRID, candidate_pool, pool_prior, recommend_topk

DOMAINS = ["general", "code", "math", "web", "books"]
COUNTS = np.array([10e6, 2e6, 1e6, 5e6, 0.5e6])


def _dirichlet_moments(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a0 = alpha.sum()
    m = alpha / a0
    return m, m * (1 - m) / (a0 + 1)


@pytest.mark.parametrize("kind", ["uniform", "prior"])
def test_simplex_samples_the_right_dirichlet(kind: str) -> None:
    s = Simplex.uniform(DOMAINS) if kind == "uniform" else Simplex.around_prior(DOMAINS, COUNTS, 2.0)
    W = s.sample(100_000, np.random.default_rng(0))
    assert np.allclose(W.sum(axis=1), 1.0) and (W >= 0).all()
    mean, var = _dirichlet_moments(s.alpha)
    assert np.allclose(W.mean(axis=0), mean, atol=4e-3)
    assert np.allclose(W.var(axis=0), var, rtol=0.05, atol=2e-4)
    if kind == "uniform":  # Dirichlet(1,...,1): a marginal is Beta(1, K-1), P(w_0 < 0.1) = 1 - 0.9^4
        assert (W[:, 0] < 0.1).mean() == pytest.approx(1 - 0.9**4, abs=0.01)


@pytest.mark.parametrize("kind", ["uniform", "prior"])
def test_simplex_map_is_invertible(kind: str) -> None:
    s = Simplex.uniform(DOMAINS) if kind == "uniform" else Simplex.around_prior(DOMAINS, COUNTS, 1.0)
    rng = np.random.default_rng(1)
    cases = list(s.sample(500, rng)) + list(np.eye(5)) + [np.full(5, 0.2), COUNTS / COUNTS.sum()]
    cases.append(np.array([0.5, 0.0, 0.25, 0.25, 0.0]))
    for w in cases:
        u = s.to_raw(w)
        assert ((u >= 0) & (u < 1)).all()
        assert np.allclose(s.to_weights(u), w, atol=1e-10)
        assert np.allclose(s.from_params(s.params(w)), w, atol=1e-10)


def _build(cc: dict, **kw: object) -> Constraints:
    args = {
        "general": "general",
        "beta": 0.5,
        "token_counts": COUNTS,
        "target_tokens": 10e6,
        "max_epochs": 4.0,
    }
    args.update(kw)
    return build_constraints(ConstraintsConfig(**cc), DOMAINS, **args)  # type: ignore[arg-type]


def test_ratio_bounds_become_weight_bounds() -> None:
    c = _build({"min": {"math": 0.1}, "max": {"code": 0.2, "general": 0.8}, "fixed": {"web": 0.05}})
    # r = 0.5 e_G + 0.5 w: r_math >= 0.1 <=> w_math >= 0.2; r_G <= 0.8 <=> w_G <= 0.6
    assert c.lo[2] == pytest.approx(0.2) and c.hi[1] == pytest.approx(0.4) and c.hi[0] == pytest.approx(0.6)
    assert c.lo[3] == pytest.approx(0.1) and c.hi[3] == pytest.approx(0.1)
    # books: 0.5M tokens * 4 epochs / 10M = r <= 0.2 <=> w <= 0.4 (the epoch cap)
    assert c.hi[4] == pytest.approx(0.4)
    on_w = _build({"on": "weights", "min": {"math": 0.1}, "cap_epochs": False})
    assert on_w.lo[2] == pytest.approx(0.1) and on_w.hi[4] == 1.0


def test_repair_is_identity_on_feasible_and_projects_the_rest() -> None:
    c = _build({"max": {"code": 0.2}, "groups": [{"domains": ["code", "math"], "max": 0.3}]})
    rng = np.random.default_rng(0)
    W = Simplex.uniform(DOMAINS).sample(2000, rng)
    R = c.repair(W)
    assert c.feasible(R).all()
    ok = c.feasible(W)
    assert ok.any() and np.allclose(R[ok], W[ok])
    # a feasible point is its own projection, an infeasible one moves to the closest feasible point
    w = W[~ok][0]
    r = c.repair(w)
    others = R[c.feasible(R)]
    assert np.linalg.norm(r - w) <= np.min(np.linalg.norm(others - w, axis=1)) + 1e-9


def test_min_weight_drops_small_shares_where_allowed() -> None:
    c = _build({"min": {"math": 0.05}}, min_weight=0.05)
    w = c.repair(np.array([0.5, 0.02, 0.06, 0.4, 0.02]))
    assert w[1] == 0 and w[4] == 0 and w[2] >= 0.1 - 1e-9 and w.sum() == pytest.approx(1)


@pytest.mark.parametrize(
    ("cc", "needle"),
    [
        ({"max": {"general": 0.4}}, "general"),  # proxies always hold beta=0.5 general data
        ({"min": {"code": 0.3, "web": 0.3}}, "no mixture satisfies"),
        ({"min": {"math": 0.5}}, "epoch cap math"),
        ({"groups": [{"domains": ["code", "math"], "min": 0.9}], "max": {"general": 0.5}}, "groups[0]"),
    ],
)
def test_infeasible_constraints_name_themselves(cc: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=r"search\.constraints") as e:
        _build(cc)
    assert needle in str(e.value)


def test_epoch_caps_that_leave_no_mixture_are_an_error() -> None:
    with pytest.raises(ConfigError, match="epoch cap"):
        _build({}, target_tokens=1e9)  # 4 epochs over 18.5M tokens cannot fill 1B


def test_candidate_pool_follows_demix() -> None:
    cfg = DemixSamplerConfig(pool_size=5000)
    prior = pool_prior(COUNTS, cfg.prior_power)
    assert np.allclose(prior, COUNTS**0.7 / (COUNTS**0.7).sum())
    c = Constraints.none(DOMAINS)
    pool = candidate_pool(prior, cfg, c, seed=0)
    assert 1000 < len(pool) <= 5000
    assert np.allclose(pool.sum(axis=1), 1.0)
    assert (pool <= cfg.max_prior_multiple * prior + 2 * GRID).all()
    nz = pool[pool > 0]
    assert nz.min() >= 0.99 * GRID  # (renormalised after rounding)
    assert len(np.unique(np.round(pool / GRID), axis=0)) == len(pool)  # de-duplicated
    again = candidate_pool(prior, cfg, c, seed=0)
    assert np.array_equal(pool, again)  # every worker computes the same pool


def test_recommend_topk_finds_the_good_region() -> None:
    cfg = DemixSamplerConfig(pool_size=5000, top_k=32)
    target = np.array([0.3, 0.3, 0.2, 0.1, 0.1])
    rng = np.random.default_rng(0)
    W = rng.dirichlet(np.ones(5), 120)
    y = -np.sum((W - target) ** 2, axis=1)
    prior = pool_prior(COUNTS, cfg.prior_power)
    w, info = recommend_topk(W, y, prior, cfg, Constraints.none(DOMAINS), seed=0)
    assert w.sum() == pytest.approx(1)
    assert -np.sum((w - target) ** 2) > np.median(y)
    assert info["top_k"] == 32 and info["n_train"] == 120


def test_round_of() -> None:
    assert round_of(0, [4, 2]) == (0, 0, 0)
    assert round_of(5, [4, 2]) == (1, 1, 4)
    assert round_of(7, [4, 2]) == (2, 1, 6)  # past the last round: its size repeats
