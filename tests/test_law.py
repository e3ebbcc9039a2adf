"""The mixing law on synthetic data from a known law, and its optimiser and scaling laws."""

from __future__ import annotations

import numpy as np
import pytest

from demix.config import LawConfig, load_config
from demix.errors import DemixError
from demix.law import (
    MixingLaw,
    RatioBounds,
    bounds_for,
    fit,
    fit_power_laws,
    learn_aggregate_weights,
    optimize,
    optimize_for,
)
from demix.law.batch import fit_batched, predict

SMALL = LawConfig(log_c_grid=(-2.0, 1.5, 3), log_k_grid=(-10.0, 1.0, 4), random_t=8, seed=0)


def _synthetic(K: int = 4, n: int = 60, noise: float = 0.002, seed: int = 0, p: float = 1.0):
    """Losses from L = c + k·exp(t·r^p) (p = 1: the paper's law, t centred as the fit reports it)."""
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, 1.0, (K, K)) - 2.0 * np.eye(K)  # own domain helps most
    if p == 1.0:
        t -= t.mean(axis=1, keepdims=True)
    c = rng.uniform(0.8, 1.5, K)
    k = rng.uniform(0.3, 0.8, K)
    R = rng.dirichlet(np.ones(K), n)
    L = c + k * np.exp(R**p @ t.T) + rng.normal(0.0, noise, (n, K))
    return R, L, c, k, t


def test_fit_recovers_t_from_noisy_synthetic_law():
    R, L, c, k, t = _synthetic()
    law = fit(R, L, SMALL)
    assert law.t.shape == (4, 4)
    np.testing.assert_allclose(law.t, t, atol=0.25)
    np.testing.assert_allclose(law.c, c, atol=0.08)
    assert np.corrcoef(law.t.ravel(), t.ravel())[0, 1] > 0.98
    # Signs of the off-diagonal interactions that matter are right.
    big = np.abs(t) > 0.5
    assert np.all(np.sign(law.t[big]) == np.sign(t[big]))
    Rn, *_ = _synthetic(seed=1, noise=0.0)
    assert np.abs(law.predict(Rn) - (c + k * np.exp(Rn @ t.T))).mean() < 0.01


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_cross_validation_picks_the_exponent_the_data_follow(p):
    R, L, c, k, t = _synthetic(n=50, noise=0.003, seed=4, p=p)
    law = fit(R, L, SMALL.model_copy(update={"combine": "select"}))
    assert law.exponent == p and law.info["combine"] == "select" and not law.parts
    cv = law.info["exponent_cv_mae"]
    assert cv[str(p)] == min(cv.values()) and law.info["exponent_choice"] == "5-fold cross-validation"
    np.testing.assert_allclose(law.t, t, atol=0.3)
    assert np.corrcoef(law.t.ravel(), t.ravel())[0, 1] > 0.98
    Rn, *_ = _synthetic(n=50, seed=9, noise=0.0)
    assert np.abs(law.predict(Rn) - (c + k * np.exp(Rn**p @ t.T))).mean() < 0.01
    doc = law.to_json()
    assert doc["exponent"] == p and ("r_j^0.5" in doc["law"]) == (p == 0.5)
    back = MixingLaw.from_json(doc)
    np.testing.assert_allclose(back.predict(Rn), law.predict(Rn))


def test_exponent_given_or_too_few_mixtures_to_cross_validate():
    R, L, *_ = _synthetic(K=3, n=40, seed=6, p=0.5)
    assert fit(R, L, SMALL.model_copy(update={"exponents": (1.0,)})).exponent == 1.0
    few = fit(R[:7], L[:7], SMALL)  # 5 folds leave 5 mixtures; the law has 5 parameters
    assert few.exponent == 1.0 and few.info["exponent_choice"].startswith("first listed: too few")
    with pytest.raises(ValueError, match="each must lie in"):
        LawConfig(exponents=(1.0, 2.0))
    with pytest.raises(DemixError, match=r"exponent 2\.0 is not in"):
        MixingLaw.from_json({**fit(R, L, SMALL).to_json(), "exponent": 2.0})


def test_batched_solver_matches_scipy_on_each_problem():
    from scipy.optimize import least_squares

    R, L, *_ = _synthetic(K=3, n=25, noise=0.01, seed=3)
    starts = np.array([[0.0, -1.0, 0.05, 0.05, -0.5], [0.5, 0.0, 0.0, 0.0, 0.0]])
    res = fit_batched(R, L.T, starts, delta=0.02, max_iter=300)
    for i in range(3):
        target = L[:, i]
        best = min(
            (
                least_squares(lambda th, y=target: predict(th, R) - y, s0, loss="huber", f_scale=0.02)
                for s0 in starts
            ),
            key=lambda r: r.cost,
        )
        assert res.loss[i] <= best.cost + 1e-7  # scipy's huber cost is the summed Huber loss


def test_best_start_is_chosen_by_training_loss():
    R, L, *_ = _synthetic(K=3, n=30, seed=2)
    good = fit(R, L, SMALL)
    one = fit(
        R,
        L,
        SMALL.model_copy(
            update={"log_c_grid": (1.5, 1.5, 1), "log_k_grid": (-10.0, -10.0, 1), "random_t": 1}
        ),
    )
    assert np.all(good.train_loss <= one.train_loss + 1e-12)


def test_fit_rejects_bad_shapes():
    R, L, *_ = _synthetic(K=3, n=10)
    with pytest.raises(DemixError, match="sums to"):
        fit(R * 2, L, SMALL)
    with pytest.raises(DemixError, match="rows of losses"):
        fit(R, L[:5], SMALL)


def test_learned_aggregate_weights_recover_validation_mix():
    rng = np.random.default_rng(0)
    L = rng.uniform(1.0, 3.0, (40, 5))
    s = np.array([0.5, 0.2, 0.2, 0.1, 0.0])
    np.testing.assert_allclose(learn_aggregate_weights(L, L @ s), s, atol=1e-4)


def test_optimum_respects_constraints_and_beats_a_grid():
    R, L, *_ = _synthetic(K=3, n=40, seed=5)
    law = fit(R, L, SMALL, aggregate=np.ones(3))
    free = optimize(law)
    grid = np.array(
        [[a, b, 1 - a - b] for a in np.linspace(0, 1, 101) for b in np.linspace(0, 1, 101) if a + b <= 1]
    )
    assert free.loss <= law.predict_aggregate(grid).min() + 1e-6
    b = RatioBounds(
        np.array([0.1, 0, 0]),
        np.array([1, 0.3, 1.0]),
        np.array([[1.0, 1.0, 0.0]]),
        np.array([0.0]),
        np.array([0.6]),
    )
    con = optimize(law, b)
    assert b.violation(con.r) < 1e-6
    assert abs(con.r.sum() - 1) < 1e-9


def test_square_root_law_optimum_respects_constraints_and_beats_a_grid():
    """For p < 1 the optimiser works in u = r^p: zero shares (infinite slope in r) are reachable."""
    R, L, *_ = _synthetic(K=3, n=40, seed=5, p=0.5)
    law = fit(R, L, SMALL.model_copy(update={"exponents": (0.5,)}), aggregate=np.array([0.7, 0.3, 0.0]))
    grid = np.array(
        [[a, b, 1 - a - b] for a in np.linspace(0, 1, 201) for b in np.linspace(0, 1, 201) if a + b <= 1]
    )
    free = optimize(law)
    assert free.loss <= law.predict_aggregate(grid).min() + 1e-6
    b = RatioBounds(
        np.array([0.0, 0.0, 0.2]), np.ones(3), np.array([[1.0, 1.0, 0.0]]), np.array([0.0]), np.array([0.7])
    )
    con = optimize(law, b)
    assert b.violation(con.r) < 1e-6
    ok = (grid[:, 2] >= 0.2) & (grid[:, :2].sum(axis=1) <= 0.7)
    assert con.loss <= law.predict_aggregate(grid[ok]).min() + 1e-6


def test_optimize_for_uses_search_constraints():
    cfg = load_config(
        "tests/configs/tiny.yaml",
        ["search.constraints.max.code=0.05", "search.constraints.min.tables=0.2", "search.min_weight=0.03"],
    )
    names = cfg.domains
    R, L, *_ = _synthetic(K=len(names), n=50, seed=7)
    law = fit(R, L, SMALL, domains=names, aggregate=np.ones(len(names)))
    r = optimize_for(cfg, law, names)
    assert r[names.index("code")] <= 0.05 + 1e-6
    assert r[names.index("tables")] >= 0.2 - 1e-6
    assert np.all((r == 0) | (r >= 0.03 - 1e-6))
    assert bounds_for(cfg, names).hi[names.index("code")] == pytest.approx(0.05)


def test_power_laws_recover_parameters():
    rng = np.random.default_rng(0)
    x = np.tile(np.geomspace(1e3, 3e4, 12), (5, 1))
    E, B, beta = rng.uniform(1.5, 3, 5), rng.uniform(5, 50, 5), rng.uniform(0.3, 0.7, 5)
    y = E[:, None] + B[:, None] * x ** (-beta[:, None]) + rng.normal(0, 1e-4, x.shape)
    x[0, -3:] = np.nan  # a shorter curve
    pl = fit_power_laws(x, y)
    np.testing.assert_allclose(pl.predict(1e5), E + B * 1e5 ** (-beta), rtol=2e-3)


def test_optimize_for_accepts_an_unnamed_law():
    """export refits the law without names and passes the run's domains."""
    cfg = load_config("tests/configs/tiny.yaml", ["search.constraints.max.code=0.1"])
    R, L, *_ = _synthetic(K=len(cfg.domains), n=40, seed=8)
    r = optimize_for(cfg, fit(R, L, SMALL), cfg.domains)
    assert r[cfg.domains.index("code")] <= 0.1 + 1e-6 and r.sum() == pytest.approx(1.0)


def _baselines(run_root, tasks: dict[str, tuple[str, list[float]]]) -> None:
    import json

    names = ["uniform", "only:a", "only:b"]
    doc = {
        "baselines": {
            n: {
                "score": {
                    "metrics": {
                        t: {"value": vals[i], "direction": "lower", "group": g, "weight": 1.0}
                        for t, (g, vals) in tasks.items()
                    }
                }
            }
            for i, n in enumerate(names)
        }
    }
    (run_root / "search").mkdir(parents=True, exist_ok=True)
    (run_root / "search" / "baselines.json").write_text(json.dumps(doc))


def test_objective_weights_make_the_law_rank_as_the_objective(tmp_path) -> None:
    from demix.law.run_io import objective_weights
    from demix.run import RunDir

    run = RunDir(tmp_path)
    # Two groups; "general" has two bpb tasks; "code" one. Spreads over the baselines: 1, 2, 0.5.
    _baselines(
        tmp_path,
        {
            "demix_bpb_a": ("general", [2.0, 1.5, 2.5]),
            "demix_bpb_c": ("general", [3.0, 2.0, 4.0]),
            "demix_bpb_b": ("code", [1.0, 1.2, 0.7]),
        },
    )
    got = objective_weights(run, ["a", "b", "c", "d"])
    raw = np.array([0.5 / 2 / 1.0, 1.0 / 2 / 0.5, 0.5 / 2 / 2.0, 0.0])  # weight/group/groups/spread
    assert got is not None and np.allclose(got[0], raw / raw.sum()) and got[1] == []
    # A benchmark beside them: the bits-per-byte part is weighted as before, the benchmark named.
    _baselines(
        tmp_path,
        {
            "demix_bpb_a": ("general", [2.0, 1.5, 2.5]),
            "arc_easy": ("general", [0.3, 0.4, 0.5]),
            "demix_bpb_b": ("code", [1.0, 1.2, 0.7]),
        },
    )
    got = objective_weights(run, ["a", "b"])
    raw = np.array([1 / 2 / 2 / 1.0, 1 / 1 / 2 / 0.5])  # general: bpb_a and arc_easy; code: bpb_b
    assert got is not None and np.allclose(got[0], raw / raw.sum()) and got[1] == ["arc_easy"]
    _baselines(tmp_path, {"arc_easy": ("general", [0.3, 0.4, 0.5])})
    assert objective_weights(run, ["a", "b"]) is None  # no bits per byte: nothing the law can weigh


def test_objective_coefficients_are_the_objective_slopes() -> None:
    """The weighting the law borrows is the objective's own: its slope in each task value."""
    from demix.evaluate.result import EvalResult, Metric
    from demix.evaluate.scores import objective, objective_coefficients

    def result(vals: dict[str, float]) -> EvalResult:
        groups = {"a": "general", "b": "general", "c": "code", "z": "code"}
        weights = {"a": 1.0, "b": 3.0, "c": 1.0, "z": 0.0}
        return EvalResult(
            {t: Metric(v, None, "lower", groups[t], weight=weights[t]) for t, v in vals.items()}
        )

    frozen = {"u": {"a": 2.0, "b": 3.0, "c": 1.0, "z": 1.0}, "v": {"a": 1.5, "b": 2.0, "c": 1.2, "z": 2.0}}
    base = {"a": 1.8, "b": 2.5, "c": 1.1, "z": 1.5}
    coef = objective_coefficients(result(base), frozen)
    assert set(coef) == {"a", "b", "c"}  # weight 0: not counted
    for task, slope in coef.items():
        moved = objective(result(base | {task: base[task] + 0.1}), frozen) - objective(result(base), frozen)
        assert moved == pytest.approx(0.1 * slope)
