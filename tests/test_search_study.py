"""The study driver with every sampler, on the synthetic scorer: budgets, records, baselines frozen,
multi-objective, DeMix rounds, and the recommendation."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from demix.errors import ConfigError, DemixError
from demix.mixture import weights_to_ratios
from demix.run import RunDir
from demix.search import run_search
from tests.test_search_scoring import DOMAINS, SyntheticScorer, synthetic_config

SMALL_DEMIX = {"rounds": [4, 2], "pool_size": 2000, "top_k": 8, "num_boost_round": 50}


@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes", "qmc", "random", "demix"])
def test_each_sampler_finishes_its_budget(tmp_path: Path, sampler: str) -> None:
    _, cfg = synthetic_config(tmp_path, sampler=sampler, n_trials=6, demix=SMALL_DEMIX)
    run = RunDir.for_config(cfg)
    if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        with pytest.raises(ConfigError, match="pip install cmaes"):
            run_search(cfg, run, scorer_factory=SyntheticScorer, progress=False)
        return
    study = run_search(cfg, run, scorer_factory=SyntheticScorer, progress=False, recommend=False)
    search = [t for t in study.trials if "baseline" not in t.user_attrs]
    assert len(search) == 6 and all(t.state.name == "COMPLETE" for t in search)
    W = np.array([t.user_attrs["w"] for t in search])
    assert np.allclose(W.sum(axis=1), 1.0) and (W >= 0).all()
    assert len({tuple(np.round(w, 9)) for w in W}) == 6  # six different mixtures


def test_trials_record_everything_and_baselines_are_frozen(tmp_path: Path) -> None:
    _, cfg = synthetic_config(tmp_path, sampler="tpe", n_trials=4)
    run = RunDir.for_config(cfg)
    study = run_search(cfg, run, scorer_factory=SyntheticScorer, progress=False, recommend=False)
    base = json.loads(run.baselines.read_text())
    assert set(base["baselines"]) == {"uniform", "prior", *[f"only:{d}" for d in DOMAINS]}
    prior = np.array(base["baselines"]["prior"]["w"])
    assert np.allclose(prior, [0.4, 0.2, 0.1, 0.3])  # token shares
    rows = list(csv.DictReader(run.trials_csv.open()))
    assert len(rows) == 6 + 4
    head = list(rows[0])
    assert head[:3] == ["trial", "state", "baseline"]
    for prefix in ("w:", "mix:", "loss:"):
        assert [c for c in head if c.startswith(prefix)] == [prefix + d for d in DOMAINS]
    for col in ("metric:general_acc", "metric:math_loss", "objective", "objective:code", "merge_s", "eval_s"):
        assert col in head
    for row in rows:
        w = np.array([float(row[f"w:{d}"]) for d in DOMAINS])
        r = np.array([float(row[f"mix:{d}"]) for d in DOMAINS])
        assert np.allclose(r, weights_to_ratios(w, DOMAINS, "prose", 0.5), atol=1e-5)
    uniform = next(r for r in rows if r["baseline"] == "uniform")
    assert np.allclose([float(uniform[f"w:{d}"]) for d in DOMAINS], 0.25)
    # baseline trials carry raw params that map back to their weights exactly
    t = next(t for t in study.trials if t.user_attrs.get("baseline") == "only:code")
    from demix.search.simplex import Simplex

    assert np.allclose(Simplex.uniform(DOMAINS).from_params(t.params), [0, 1, 0, 0], atol=1e-12)
    values = {t.number: t.value for t in study.trials}
    # resuming with a larger budget: nothing recorded changes, baselines are not rescored
    study2 = run_search(cfg, run, n_trials=6, scorer_factory=SyntheticScorer, progress=False, recommend=False)
    assert json.loads(run.baselines.read_text()) == base
    assert all(study2.trials[n].value == v for n, v in values.items())
    assert len([t for t in study2.trials if "baseline" not in t.user_attrs]) == 6


def test_groups_objectives_keep_a_pareto_front(tmp_path: Path) -> None:
    _, cfg = synthetic_config(tmp_path, sampler="tpe", n_trials=5, objectives="groups")
    run = RunDir.for_config(cfg)
    study = run_search(cfg, run, scorer_factory=SyntheticScorer, progress=False, recommend=False)
    assert len(study.directions) == 3  # code, general, math
    assert study.best_trials
    from demix.search.trials import best_table

    assert "Pareto front" in best_table(study, DOMAINS)


@pytest.mark.parametrize("sampler", ["cmaes", "demix"])
def test_single_objective_samplers_refuse_groups(tmp_path: Path, sampler: str) -> None:
    _, cfg = synthetic_config(tmp_path, sampler=sampler, objectives="groups")
    with pytest.raises(DemixError, match=f"search\\.sampler={sampler}"):
        run_search(cfg, RunDir.for_config(cfg), scorer_factory=SyntheticScorer, progress=False)


def test_demix_rounds_and_recommendation(tmp_path: Path) -> None:
    demix = {"rounds": [12, 6, 6], "pool_size": 4000, "top_k": 16, "num_boost_round": 200}
    _, cfg = synthetic_config(tmp_path, sampler="demix", n_trials=24, demix=demix)
    run = RunDir.for_config(cfg)
    study = run_search(cfg, run, scorer_factory=SyntheticScorer, progress=False)
    search = sorted((t for t in study.trials if "baseline" not in t.user_attrs), key=lambda t: t.number)
    y = np.array([t.value for t in search])
    assert y[12:].mean() > y[:12].mean()  # surrogate rounds beat the random first round
    rec = json.loads((run.search / "recommendation.json").read_text())
    assert set(rec["w"]) == set(DOMAINS) and sum(rec["w"].values()) == pytest.approx(1)
    assert rec["r"]["prose"] >= 0.5  # beta = 0.5 of general data in every proxy
    assert set(rec["report"]) >= {"recommended", "uniform", "prior", "best_trial"}
    assert rec["beats"] == {"uniform": True, "prior": True}, rec["margin"]
