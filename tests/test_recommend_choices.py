"""The recommendation's pure pieces: trials table parsing, bootstrap, Pareto front, beta edge, candidates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from demix.errors import DataError
from demix.recommend.choices import Candidate, best_index, bootstrap_interval, edge_warning, pareto_front
from demix.recommend.table import parse_trials_csv

TRIALS = """trial,state,baseline,w:a,w:b,mix:a,mix:b,loss:a,loss:b,metric:t1,objective,objective:g1,objective:g2,merge_s,eval_s
0,COMPLETE,uniform,0.5,0.5,0.75,0.25,1.0,2.0,0.3,0.5,0.4,0.6,0.1,0.2
1,COMPLETE,,0.2,0.8,0.6,0.4,1.1,1.9,0.4,0.7,0.9,0.5,0.1,0.2
2,FAIL,,0.1,0.9,0.55,0.45,,,,,,,0.1,
3,COMPLETE,,0.9,0.1,0.95,0.05,0.9,2.2,0.2,0.6,0.3,0.9,0.1,0.2
"""


def test_parse_trials_keeps_order_and_drops_unfinished() -> None:
    t = parse_trials_csv(TRIALS)
    assert t.domains == ["a", "b"] and len(t) == 4
    done = t.complete()
    assert done.number.tolist() == [0, 1, 3]
    assert done.baseline.tolist() == ["uniform", "", ""]
    np.testing.assert_allclose(done.R[1], [0.6, 0.4])
    assert done.groups == ["g1", "g2"]
    np.testing.assert_allclose(done.group_matrix()[:, 1], [0.6, 0.5, 0.9])
    np.testing.assert_allclose(done.metrics["t1"], [0.3, 0.4, 0.2])


def test_parse_trials_rejects_foreign_csv() -> None:
    with pytest.raises(DataError, match="w:<domain>"):
        parse_trials_csv("x,y\n1,2\n", source="f.csv")


def test_bootstrap_interval_is_deterministic_and_covers() -> None:
    x = np.random.default_rng(0).normal(size=(50, 2))

    def mean(idx: np.ndarray, b: int) -> np.ndarray:
        return x[idx].mean(axis=0)

    a = bootstrap_interval(mean, 50, 200, seed=3)
    b = bootstrap_interval(mean, 50, 200, seed=3)
    c = bootstrap_interval(mean, 50, 200, seed=4)
    assert a is not None and c is not None
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a[:, 0] <= x.mean(axis=0)) and np.all(x.mean(axis=0) <= a[:, 1])
    assert bootstrap_interval(mean, 50, 0, seed=3) is None


def test_pareto_front_and_best_index() -> None:
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.4, 0.4], [np.nan, 2.0]])
    assert pareto_front(Y).tolist() == [0, 1, 2]
    assert best_index(np.array([0.1, np.nan, 0.3, 0.3])) == 2


def test_edge_warning() -> None:
    d = ["prose", "code"]
    assert edge_warning(np.array([0.51, 0.49]), d, "prose", 0.5, 0.02) is not None
    assert edge_warning(np.array([0.7, 0.3]), d, "prose", 0.5, 0.02) is None
    assert (
        edge_warning(np.array([0.7, 0.3]), d, "prose", 0.5, 0.02, top_w_general=np.array([0.0, 0.01]))
        is not None
    )
    assert edge_warning(np.array([0.0, 1.0]), d, "prose", 0.0, 0.02) is None


def test_candidate_json_round_trip() -> None:
    c = Candidate(
        "law", np.array([0.4, 0.6]), None, {"law_loss": 1.2}, np.array([[0.3, 0.5], [0.5, 0.7]]), "x"
    )
    back = Candidate.from_json(json.loads(json.dumps(c.to_json(["a", "b"]))), ["a", "b"])
    assert back.w is None and back.predicted == {"law_loss": 1.2}
    np.testing.assert_allclose(back.interval, c.interval)
