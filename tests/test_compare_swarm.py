"""The swarm's designs and the law as a method (pure parts): the Data Mixing Laws' double-diminishing
proportions, RegMix's pool under the run's constraints, the nested step law on members' loss
curves and the selection of the fitting subset."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from demix.compare.designs import ENUMERATE_LIMIT, diminishing_proportions, double_diminishing
from demix.compare.lawfit import LawRows, law_rows, select_subset
from demix.compare.models import Cost, Trained
from demix.compare.swarm import Swarm, regmix_answer
from demix.errors import DemixError
from tests.conftest import tiny_config

G = 1 / 16


def test_proportions_halve_from_the_cap_in_granules() -> None:
    # caps 1, 0.5, 0.3 and 0.04: g·floor(m/g) = 1, 0.5, 0.25 (0.3 rounds down to 4 granules) and,
    # below one granule, the cap itself; then halved three times, and 0.
    props = diminishing_proportions(np.array([1.0, 0.5, 0.3, 0.04]), G, 3)
    assert [p.tolist() for p in props] == [
        [0.0, 0.125, 0.25, 0.5, 1.0],
        [0.0, 0.0625, 0.125, 0.25, 0.5],
        [0.0, 0.03125, 0.0625, 0.125, 0.25],
        [0.0, 0.005, 0.01, 0.02, 0.04],
    ]


def test_small_example_gives_exactly_the_combinations_summing_to_one() -> None:
    caps = np.array([1.0, 0.5, 0.3])
    R = double_diminishing(caps, G, 3, 100, seed=0)
    # By hand from the three sets above: the only ways to make 1.
    expected = {(1.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.5, 0.25, 0.25), (0.25, 0.5, 0.25)}
    assert {tuple(r) for r in R.tolist()} == expected
    # ... and the same as brute force over every combination.
    props = diminishing_proportions(caps, G, 3)
    brute = {c for c in product(*[p.tolist() for p in props]) if abs(sum(c) - 1) < 1e-12}
    assert brute == expected


def test_draws_are_seeded_and_prefix_stable() -> None:
    caps = np.ones(5)
    a, b = double_diminishing(caps, G, 3, 6, seed=3), double_diminishing(caps, G, 3, 12, seed=3)
    assert np.array_equal(a, b[:6])
    assert not np.array_equal(a, double_diminishing(caps, G, 3, 6, seed=4))
    assert len({tuple(r) for r in b.tolist()}) == 12


def test_many_domains_draw_one_at_a_time_within_the_sets_and_the_constraints() -> None:
    K = 12
    caps = np.full(K, 0.3)
    props = diminishing_proportions(caps, G, 3)
    assert np.prod([len(p) for p in props]) > ENUMERATE_LIMIT  # the sequential branch
    R = double_diminishing(caps, G, 3, 40, seed=0, feasible=lambda r: r[0] >= 0.125)
    assert R.shape == (40, K) and len({tuple(r) for r in R.tolist()}) == 40
    assert np.allclose(R.sum(axis=1), 1.0)
    for r in R:
        assert all(np.isclose(p, r[d]).any() for d, p in enumerate(props))
    assert np.all(R[:, 0] >= 0.125)


def test_caps_that_cannot_reach_one_are_a_clear_error() -> None:
    with pytest.raises(DemixError, match="no double-diminishing mixture sums to 1"):
        double_diminishing(np.array([0.2, 0.2, 0.2]), G, 3, 4, seed=0)


class _Linear:
    """A stand-in regressor: predicts the first domain's share (pure logic under test is the pool)."""

    def predict(self, R: np.ndarray) -> np.ndarray:
        return np.asarray(R, dtype=np.float64)[:, 0]


def _swarm(members: list[Trained], R: np.ndarray, L: np.ndarray, tokens: int) -> Swarm:
    return Swarm(members, R, np.zeros(len(R)), L, Cost(), 0, tokens, "dirichlet")


def test_regmix_pool_keeps_to_the_constraints(tmp_path: Path) -> None:
    domains = ["prose", "code", "math", "comments", "tables"]
    cfg = tiny_config(
        tmp_path, "search.constraints.max.prose=0.3", "search.constraints.cap_epochs=false",
        "compare.regmix.pool_size=3000", "compare.regmix.top_k=8",
    )  # fmt: skip
    prior = np.full(5, 0.2)
    a = regmix_answer(
        cfg, _swarm([], np.zeros((0, 5)), np.zeros((0, 5)), 1), domains, prior, prior * 1e6, _Linear()
    )
    # The regressor wants prose; the constraint holds it at 0.3 at most.
    assert a.r[0] <= 0.3 + 1e-9 and a.r[0] > 0.2
    assert "meet the constraints" in a.note


def _member(tmp: Path, i: int, r: np.ndarray, curve: dict[int, np.ndarray]) -> Trained:
    path = tmp / f"m{i}"
    path.mkdir()
    rows = [
        {"step": t // 1000, "tokens": t, "loss": {d: float(v) for d, v in zip("abc", loss, strict=True)}}
        for t, loss in curve.items()
    ]
    (path / "eval_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return Trained(f"m{i}", r, path, None, {}, 0.0)  # type: ignore[arg-type]


def test_step_law_extrapolates_each_members_curve_to_the_check_budget(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, "law.huber_delta=1.0")
    rng = np.random.default_rng(0)
    R = rng.dirichlet(np.ones(3), size=6)
    E = 1.0 + R  # each member's and domain's floor; L(D) = E + 2·(D/1000)^-0.5
    members = [
        _member(tmp_path, i, r, {t: E[i] + 2.0 * (t / 1000) ** -0.5 for t in (1000, 2000, 4000, 8000)})
        for i, r in enumerate(R)
    ]
    swarm = _swarm(members, R, E + 2.0 * 8.0**-0.5, tokens=8000)
    rows = law_rows(cfg, swarm, ["a", "b", "c"], target_tokens=64_000)
    assert "step law" in rows.source and len(rows.R) == 6
    order = [next(i for i, r in enumerate(R) if np.allclose(r, q)) for q in rows.R]
    assert np.allclose(rows.L, E[order] + 2.0 * 64.0**-0.5, atol=2e-3)
    assert rows.ids == [f"m{i}" for i in order]
    # Same budget as the check: the final measurements, untouched.
    same = law_rows(cfg, swarm, ["a", "b", "c"], target_tokens=8000)
    assert np.array_equal(same.L, swarm.L) and "bits per byte" in same.source


def test_step_law_needs_three_points_and_says_so(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    R = np.eye(3)
    members = [_member(tmp_path, i, r, {1000: np.ones(3), 2000: np.ones(3)}) for i, r in enumerate(R)]
    rows = law_rows(cfg, _swarm(members, R, np.ones((3, 3)), tokens=2000), ["a", "b", "c"], 8000)
    assert "bits per byte" in rows.source
    assert any("train.eval_every" in n for n in rows.notes)


def _law_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    R = rng.dirichlet(np.ones(3), size=n)
    t = np.array([[-2.0, 0.3, 0.1], [0.2, -1.5, 0.4], [0.1, 0.2, -1.0]])
    return R, 1.0 + 0.5 * np.exp(R @ t.T)


def test_subset_selection_leaves_the_broken_runs_out(tmp_path: Path) -> None:
    # 10 runs, subsets of 8: all 45 tried (no more than subset_draws); one leaves both broken runs out.
    cfg = tiny_config(
        tmp_path, "law.random_t=4", "law.cv_starts=10", "compare.law.subset=8", "compare.law.subset_draws=45"
    )
    R, L = _law_data(10, 0)
    L[[2, 5]] += 0.8  # two runs whose losses are off the law (a broken run, a data bug)
    rows, info, _ = select_subset(cfg, LawRows(R, L, "test", [f"r{i}" for i in range(10)]), ["a", "b", "c"])
    assert info["left_out"] == ["r2", "r5"] and info["tried"] == 45 and len(rows.ids) == 8
    assert info["fit_mae"] < 0.01 < info["median_fit_mae"] and info["left_out_mae"] > 0.5
    with pytest.raises(DemixError, match=r"compare\.law\.subset"):
        bad = tiny_config(tmp_path, "compare.law.subset=10")
        select_subset(bad, LawRows(R, L, "test", [str(i) for i in range(10)]), ["a", "b", "c"])


def test_config_rejects_unknown_sampler(tmp_path: Path) -> None:
    from demix.errors import ConfigError

    with pytest.raises((ConfigError, ValueError)):
        tiny_config(tmp_path, "compare.swarm.sampler=grid")
    cfg: Any = tiny_config(tmp_path, "compare.swarm.sampler=double_diminishing")
    assert cfg.compare.swarm.sampler == "double_diminishing" and cfg.compare.swarm.granularity == G


def _row(rank: float, value: float) -> dict[str, Any]:
    return {"rank": rank, "trained": {"value": value, "low": value - 0.3, "high": value + 0.3}}


def test_verdict_names_the_winner_the_margin_and_whether_it_is_noise() -> None:
    from demix.compare.check import verdict

    rows = {"demix": _row(1, 0.80), "regmix": _row(2, 0.60)}
    clear = verdict(rows, {"best": "demix", "vs": {"regmix": {"diff": 0.2, "low": 0.05, "high": 0.35}}})
    assert clear.startswith("demix won: trained score 0.800 vs 0.600 for regmix") and "+0.200" in clear
    assert "[+0.050, +0.350] excludes 0: a clear lead" in clear
    rows = {"law": _row(2, 0.70), "prior": _row(1, 0.72)}
    noisy = verdict(rows, {"best": "prior", "vs": {"law": {"diff": 0.02, "low": -0.01, "high": 0.05}}})
    assert noisy.startswith("prior and law are level: trained score 0.720 vs 0.700 for law")
    assert "won" not in noisy and "includes 0, so the lead is within the evaluation noise" in noisy
    unknown = verdict(rows, None)
    assert unknown.startswith("prior scored highest") and "bootstrap is 0" in unknown


def _bpb(per_doc_nll: np.ndarray, group: str = "code") -> Any:
    """An EvalResult with one bits-per-byte report task from per-document (log-likelihood, bytes)."""
    from demix.evaluate.result import EvalResult, Metric, resample_value

    items = [[float(-n), 100.0] for n in per_doc_nll]
    value = resample_value("bits_per_byte", items, np.arange(len(items)))
    assert value is not None
    task = "demix_bpb_code_report"
    return EvalResult(
        {task: Metric(value, 0.05, "lower", group, role="report")}, items={task: ("bits_per_byte", items)}
    )


def test_paired_draws_separate_models_that_differ_on_every_document() -> None:
    from demix.compare.check import interval, lead, paired_draws, score

    rng = np.random.default_rng(0)
    hard = rng.gamma(2.0, 100.0, size=60)  # documents vary a lot in difficulty ...
    a, b = _bpb(hard), _bpb(hard * 0.97)  # ... and b is 3% better on every one of them
    anchors = {"base": _bpb(hard * 1.3), "prior": _bpb(hard * 0.9)}
    va, vb = score(a, anchors), score(b, anchors)
    ia, ib = interval([a], anchors, 500, 0), interval([b], anchors, 500, 1)
    assert vb > va and ib["low"] < ia["high"]  # each model's own interval: they overlap
    draws = paired_draws({"a": [a], "b": [b]}, anchors, 500, 0)
    ld = lead(draws, {"a": va, "b": vb})
    assert ld["best"] == "b" and ld["vs"]["a"]["diff"] == pytest.approx(vb - va)
    assert 0 < ld["vs"]["a"]["low"] <= vb - va <= ld["vs"]["a"]["high"]  # paired: a clear lead
    # without per-document values the draws fall back to each task's stderr, unpaired
    a.items.clear()
    b.items.clear()
    loose = lead(paired_draws({"a": [a], "b": [b]}, anchors, 500, 0), {"a": va, "b": vb})
    assert loose["vs"]["a"]["low"] < 0


def test_loss_weights_follow_the_checks_bits_per_byte_tasks() -> None:
    from demix.compare.check import loss_weights
    from demix.evaluate.result import EvalResult, Metric

    def result(code: float, math: float, acc: float) -> EvalResult:
        return EvalResult(
            {
                "demix_bpb_code_report": Metric(code, 0.01, "lower", "code", role="report"),
                "demix_bpb_math_report": Metric(math, 0.01, "lower", "math", role="report"),
                "demix_order_code_report": Metric(acc, 0.01, "higher", "code", role="report"),
            }
        )

    # code's bpb spans 1.0 over the anchors, math's 0.25 (4x the slope), and code's group shares its
    # weight with the accuracy task (2x): a unit of math loss moves the scale 8x more than code's
    anchors = {"base": result(3.0, 2.0, 0.5), "prior": result(2.0, 1.75, 0.6)}
    tasks = {"demix_bpb_code_report": "code", "demix_bpb_math_report": "math"}  # from the task specs
    s, how = loss_weights(result(2.5, 1.8, 0.55), anchors, ["prose", "code", "math"], tasks)
    assert s[0] == 0 and s[2] / s[1] == pytest.approx(8.0) and s.sum() == pytest.approx(1.0)
    assert "1 other task(s) are not a function of these losses" in how
