"""The objective and aggregations (pure functions, hand-computed numbers)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from demix.evaluate import scores
from demix.evaluate.result import EvalResult, Metric, mean_stderr, ratio_stderr, stderr_for


def _res(values: dict[str, float], directions: dict[str, str], groups: dict[str, str]) -> EvalResult:
    return EvalResult({k: Metric(v, None, directions[k], groups[k]) for k, v in values.items()})  # type: ignore[arg-type]


DIRS = {"acc_a": "higher", "acc_b": "higher", "bpb": "lower"}
GROUPS = {"acc_a": "general", "acc_b": "general", "bpb": "math"}
BASELINES = {
    "uniform": {"acc_a": 0.4, "acc_b": 0.2, "bpb": 2.0},
    "math": {"acc_a": 0.6, "acc_b": 0.3, "bpb": 1.0},
}


def test_normalisation_direction_and_values_beyond() -> None:
    r = _res({"acc_a": 0.5, "acc_b": 0.4, "bpb": 0.5}, DIRS, GROUPS)
    norm = scores.normalized_tasks(r, BASELINES)
    assert norm["acc_a"] == pytest.approx(0.5)
    assert norm["acc_b"] == pytest.approx(2.0)  # better than every baseline: kept above 1
    assert norm["bpb"] == pytest.approx(1.5)  # lower is better: 0 at 2.0, 1 at 1.0
    groups = scores.group_objectives(r, BASELINES)
    assert groups == {"general": pytest.approx(1.25), "math": pytest.approx(1.5)}
    assert scores.objective(r, BASELINES) == pytest.approx(1.375)


def test_baselines_score_zero_and_one_and_flat_tasks_are_left_out() -> None:
    worst = _res(BASELINES["uniform"], DIRS, GROUPS)
    best = _res(BASELINES["math"], DIRS, GROUPS)
    assert scores.objective(worst, BASELINES) == pytest.approx(0.0)
    assert scores.objective(best, BASELINES) == pytest.approx(1.0)
    flat = {k: {**v, "acc_b": 0.25} for k, v in BASELINES.items()}
    assert "acc_b" not in scores.normalized_tasks(best, flat)
    assert math.isnan(scores.objective(_res({"x": 1.0}, {"x": "higher"}, {"x": "g"}), BASELINES))


def test_group_weights() -> None:
    r = EvalResult(
        {
            "acc_a": Metric(0.6, None, "higher", "general", weight=3.0),
            "acc_b": Metric(0.2, None, "higher", "general", weight=1.0),
        }
    )
    assert scores.group_objectives(r, BASELINES)["general"] == pytest.approx(0.75)


def test_weight_zero_tasks_are_normalised_but_not_counted() -> None:
    r = EvalResult(
        {
            "acc_a": Metric(0.6, None, "higher", "general", weight=0.0),  # report-only accuracy
            "acc_b": Metric(0.2, None, "higher", "general"),
            "bpb": Metric(2.0, None, "lower", "math", weight=0.0),
        }
    )
    assert scores.normalized_tasks(r, BASELINES) == {"acc_a": 1.0, "acc_b": 0.0, "bpb": 0.0}
    assert scores.group_objectives(r, BASELINES) == {"general": 0.0}  # math has nothing counted
    assert scores.objective(r, BASELINES) == 0.0


def test_average_rank_is_demix_macro_over_groups() -> None:
    rs = [
        _res({"acc_a": 0.9, "acc_b": 0.1, "bpb": 1.0}, DIRS, GROUPS),
        _res({"acc_a": 0.5, "acc_b": 0.5, "bpb": 3.0}, DIRS, GROUPS),
        _res({"acc_a": 0.1, "acc_b": 0.5, "bpb": 2.0}, DIRS, GROUPS),
    ]
    ranks = scores.average_rank(rs)
    # general: acc_a ranks (1,2,3), acc_b ranks (3,1.5,1.5) -> (2, 1.75, 2.25); math (lower better): (1,3,2)
    np.testing.assert_allclose(ranks, [(2 + 1) / 2, (1.75 + 3) / 2, (2.25 + 2) / 2])


def test_capability_recovery() -> None:
    assert scores.capability_recovery(0.4, 0.5) == pytest.approx(0.8)
    assert scores.capability_recovery(2.5, 2.0, "lower") == pytest.approx(0.8)
    p = _res({"acc_a": 0.4, "bpb": 2.5}, DIRS, GROUPS)
    ref = _res({"acc_a": 0.5, "bpb": 2.0}, DIRS, GROUPS)
    assert scores.group_recovery(p, ref) == {"general": pytest.approx(0.8), "math": pytest.approx(0.8)}


def test_stderr_helpers() -> None:
    x = [1.0, 0.0, 1.0, 1.0]
    assert mean_stderr(x) == pytest.approx(np.std(x, ddof=1) / 2)
    assert mean_stderr([1.0]) is None
    pairs = [(-10.0, 5.0), (-12.0, 5.0), (-8.0, 5.0)]  # equal sizes: reduces to the stderr of a mean
    assert ratio_stderr(pairs) == pytest.approx(mean_stderr([-2.0, -2.4, -1.6]))
    bpb = stderr_for("bits_per_byte", 1.0, pairs, None, 0)
    assert bpb == pytest.approx(ratio_stderr(pairs) / math.log(2))
    med = stderr_for("median", 1.0, [1.0, 2.0, 3.0, 4.0, 5.0], lambda v: float(np.median(v)), 50)
    assert med is not None and med > 0
