"""Fidelity metrics with known answers, and the bootstrap's determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from demix.evaluate.result import Metric
from demix.util.stats import rankdata, spearman
from demix.validate.metrics import (
    fidelity,
    metric_table,
    recovery,
    task_table,
    top_k,
    top_spearman,
)
from demix.validate.stage import sample_weights


def test_spearman_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=30).astype(float)
    b = a + rng.normal(size=30)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert rankdata(np.array([3.0, 1.0, 3.0])).tolist() == [2.5, 1.0, 2.5]
    assert spearman(np.arange(5), -np.arange(5)) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.ones(4), np.arange(4)))


def test_top_quarter() -> None:
    assert top_k(16) == 4 and top_k(5) == 2 and top_k(3) == 2
    ref = np.arange(8, dtype=float)  # the top quarter is rows 6 and 7
    proxy = np.array([7, 6, 5, 4, 3, 2, 0, 1], dtype=float)  # overall reversed, top two in order
    assert spearman(proxy, ref) < 0
    assert top_spearman(proxy, ref) == pytest.approx(1.0)


def _rows(values: list[list[float]], tasks: list[tuple[str, str, str]]) -> list[dict]:
    return [
        {t: {"value": v, "direction": d, "group": g} for (t, d, g), v in zip(tasks, row, strict=True)}
        for row in values
    ]


TASKS = [("acc_code", "higher", "code"), ("bpb_code", "lower", "code"), ("acc_math", "higher", "math")]


def test_recovery_inverts_lower_is_better() -> None:
    proxy = task_table(_rows([[0.4, 2.0, 0.5]], TASKS))
    ref = task_table(_rows([[0.5, 1.0, 0.5]], TASKS), proxy.tasks)
    rec = recovery(proxy, ref)
    # code: mean(0.4/0.5, 1.0/2.0) = 0.65; math: 1.0
    assert rec["code"][0] == pytest.approx(0.65) and rec["math"][0] == pytest.approx(1.0)


def test_tables_of_metrics_and_of_their_json_agree() -> None:
    vals = [[0.4, 2.0, 0.5], [0.3, 2.5, 0.6]]
    metrics = [{t: Metric(v, None, d, g) for (t, d, g), v in zip(TASKS, row, strict=True)} for row in vals]  # type: ignore[arg-type]
    a, b = metric_table(metrics), task_table(_rows(vals, TASKS))
    assert a.tasks == b.tasks and a.directions == b.directions and a.groups == b.groups
    assert np.array_equal(a.values, b.values)
    # validation files written before directions were higher/lower said max/min
    legacy = [(t, {"higher": "max", "lower": "min"}[d], g) for t, d, g in TASKS]
    assert task_table(_rows(vals, legacy)).directions == b.directions


def test_fidelity_known_answers_and_bootstrap() -> None:
    rng = np.random.default_rng(1)
    n = 12
    ref_vals = np.column_stack([rng.uniform(0.2, 0.6, n), rng.uniform(1, 3, n), rng.uniform(0.1, 0.9, n)])
    proxy_vals = ref_vals * np.array([0.9, 1.1, 0.8])  # monotone in every task: perfect ranking
    proxy_vals[:, 2] = ref_vals[::-1, 2].copy()  # math: unrelated order
    proxy = task_table(_rows(proxy_vals.tolist(), TASKS))
    ref = task_table(_rows(ref_vals.tolist(), TASKS), proxy.tasks)
    f = fidelity(proxy, ref, replicates=200, seed=0)
    assert f.n == n and f.k_top == 3
    assert f.spearman["code"]["value"] == pytest.approx(1.0)
    m = spearman(proxy_vals[:, 2], ref_vals[:, 2])
    assert f.spearman["math"]["value"] == pytest.approx(m)
    assert f.spearman["macro"]["value"] == pytest.approx((1.0 + m) / 2)
    assert f.recovery["code"]["value"] == pytest.approx((0.9 + 1 / 1.1) / 2)
    lo, hi = f.spearman["math"]["low"], f.spearman["math"]["high"]
    assert lo <= f.spearman["math"]["value"] <= hi
    # Each task alone: acc_math in unrelated order, the code tasks perfect (bpb_code lower-is-better on both sides).
    assert f.task_spearman["acc_code"]["value"] == pytest.approx(1.0)
    assert f.task_spearman["bpb_code"]["value"] == pytest.approx(1.0)
    assert f.task_spearman["acc_math"]["value"] == pytest.approx(m)
    assert set(f.to_json()["task_spearman"]) == {"acc_code", "bpb_code", "acc_math"}
    again = fidelity(proxy, ref, replicates=200, seed=0)
    assert again.to_json() == f.to_json()
    with pytest.raises(ValueError):
        fidelity(proxy, task_table(_rows(ref_vals[:5].tolist(), TASKS)), replicates=0)


def test_sample_weights_prefix_stable() -> None:
    a = sample_weights(4, 5, seed=7, concentration=1.0)
    b = sample_weights(4, 8, seed=7, concentration=1.0)
    np.testing.assert_array_equal(a, b[:5])
    np.testing.assert_allclose(a.sum(axis=1), 1.0)


def test_weight_zero_tasks_rank_alone_not_in_their_group() -> None:
    rng = np.random.default_rng(2)
    ref_vals = np.column_stack([rng.uniform(0.2, 0.6, 10), rng.uniform(1, 3, 10), rng.uniform(0.1, 0.9, 10)])
    proxy_vals = ref_vals.copy()
    proxy_vals[:, 0] = ref_vals[::-1, 0]  # acc_code: report-only, unrelated order
    weights = {"acc_code": 0.0}
    proxy = task_table(_rows(proxy_vals.tolist(), TASKS), weights=weights)
    ref = task_table(_rows(ref_vals.tolist(), TASKS), proxy.tasks, weights)
    f = fidelity(proxy, ref, replicates=0)
    assert proxy.columns("code") == [
        proxy.tasks.index("bpb_code")
    ]  # tasks sorted: acc_code, acc_math, bpb_code
    assert proxy.counted == [False, True, True]
    assert f.spearman["code"]["value"] == pytest.approx(1.0)  # bpb_code alone
    assert f.recovery["code"]["value"] == pytest.approx(1.0)
    assert f.task_spearman["acc_code"]["value"] == pytest.approx(spearman(proxy_vals[:, 0], ref_vals[:, 0]))
    assert f.task_spearman["acc_code"]["value"] < 0.5
    only = task_table(_rows(proxy_vals.tolist(), TASKS), weights={"acc_math": 0.0})
    assert only.group_names == ["code"]  # a group with nothing counted is left out
