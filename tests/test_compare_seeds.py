"""``compare.check.seeds > 1``: several check models per mixture, each with its own data order, and
one interval over all of them (:func:`demix.compare.check.interval`)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from demix.compare import check
from demix.config import dump_config
from demix.evaluate.result import EvalResult, Metric
from demix.run import RunDir
from tests.conftest import copy_run, tiny_config


def _result(value: float, stderr: float | None = 0.01) -> EvalResult:
    """One model's report score on one higher-is-better task."""
    return EvalResult({"t": Metric(value, stderr, "higher", "g", role="report")}, role="report")


# Anchors 0 and 1 on the one task: a model's score on the comparison's scale is its task value.
ANCHORS = {"base": _result(0.0), "prior": _result(1.0)}


def _width(iv: dict[str, Any]) -> float:
    return float(iv["high"] - iv["low"])


def test_the_interval_pools_the_seeds() -> None:
    one = check.interval([_result(0.4)], ANCHORS, 4000, seed=0)
    two = check.interval([_result(0.4), _result(0.6)], ANCHORS, 4000, seed=0)
    # the value is the seeds' mean, and every seed's own score is recorded
    assert one["value"] == pytest.approx(0.4) and one["seeds"] == pytest.approx([0.4])
    assert two["value"] == pytest.approx(0.5) and two["seeds"] == pytest.approx([0.4, 0.6])
    # one seed: evaluation noise only, ±1.96 stderr
    assert one["low"] == pytest.approx(0.4 - 1.96 * 0.01, abs=3e-3)
    assert one["high"] == pytest.approx(0.4 + 1.96 * 0.01, abs=3e-3)
    # two seeds: each replicate draws one seed's model, so the interval spans the seeds' spread
    # (a 50/50 mixture: its 2.5% quantile is the lower seed's 5%), much wider than one seed's
    assert two["low"] < 0.4 < 0.6 < two["high"]
    assert two["low"] == pytest.approx(0.4 - 1.645 * 0.01, abs=3e-3)
    assert _width(two) > 5 * _width(one)


def test_seeds_that_agree_give_the_one_seed_interval() -> None:
    """Pooling is not averaging: two identical seeds give the one seed's interval, not one
    sqrt(2) narrower (the interval is over a model trained on the mixture, not their mean)."""
    one = check.interval([_result(0.4)], ANCHORS, 4000, seed=1)
    same = check.interval([_result(0.4), _result(0.4)], ANCHORS, 4000, seed=1)
    assert same["value"] == pytest.approx(0.4)
    assert _width(same) == pytest.approx(_width(one), rel=0.1)


def test_interval_without_replicates_or_noise() -> None:
    none = check.interval([_result(0.2), _result(0.8)], ANCHORS, 0, seed=0)
    assert none["value"] == pytest.approx(0.5) and np.isnan(none["low"]) and np.isnan(none["high"])
    # no stderr: the replicates are the seeds' scores themselves
    exact = check.interval([_result(0.2, None), _result(0.8, None)], ANCHORS, 500, seed=0)
    assert exact["low"] == pytest.approx(0.2) and exact["high"] == pytest.approx(0.8)
    # the same seed, the same interval
    assert check.interval([_result(0.4), _result(0.6)], ANCHORS, 300, seed=7) == check.interval(
        [_result(0.4), _result(0.6)], ANCHORS, 300, seed=7
    )


# As tests/test_compare.py's SMALL, for prior and uniform only: 4 check models of 4 steps each.
SMALL = (
    "train.eval_every=1000",
    "train.eval_tokens=2K",
    "compare.check.tokens=4K",
    "compare.check.bootstrap=200",
    "compare.check.seeds=2",
    "compare.methods=[prior, uniform]",
    "evaluate.builtin.bpb_docs=6",
    "evaluate.builtin.accuracy_docs=20",
)


@pytest.fixture(scope="module")
def two_seeds(trained_run: RunDir, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunDir, dict[str, Any]]:
    from demix.compare import compare

    run = copy_run(trained_run, tmp_path_factory.mktemp("seeds") / "run", parts=("data", "models"))
    cfg = tiny_config(run.root, *SMALL)
    run.config.write_text(dump_config(cfg))
    return run, compare(cfg, run, progress=False)


def _first_loss(run: RunDir, ref_id: str) -> float:
    row = (run.reference(ref_id) / "train_log.jsonl").read_text().splitlines()[0]
    return float(json.loads(row)["loss"])


def test_two_check_models_per_mixture_with_their_own_data_order(
    two_seeds: tuple[RunDir, dict[str, Any]],
) -> None:
    from demix.train import read_summary

    run, doc = two_seeds
    assert doc["check"]["seeds"] == 2 and list(doc["methods"]) == ["prior", "uniform"]
    on_disk = json.loads((run.root / "compare" / "compare.json").read_text())
    ids = set()
    for m, row in on_disk["methods"].items():
        a, b = row["check_models"]
        assert a != b and len(row["check_bpb"]) == 2, m
        ids |= {a, b}
        sa, sb = (read_summary(run.reference(i)) or {} for i in (a, b))
        # the same mixture, budget and start: only the seed (the data order) differs ...
        assert sa["mixture"] == pytest.approx(sb["mixture"]) and sa["tokens"] == sb["tokens"] == 4096
        assert sa["init"] == sb["init"] == str(run.base)
        # ... so the first step's batch differs (its loss is on the same base weights), and the weights
        assert _first_loss(run, a) != _first_loss(run, b), m
        assert sa["weights_sha256"] != sb["weights_sha256"], m
        t = row["trained"]
        assert len(t["seeds"]) == 2 and t["value"] == pytest.approx(np.mean(t["seeds"]))
        assert t["low"] <= min(t["seeds"]) and t["high"] >= max(t["seeds"])
    assert len(ids) == 4  # prior and uniform do not share a check model
