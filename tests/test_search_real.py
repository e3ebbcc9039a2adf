"""The search on the real path: the tiny run's trained components merged into a live model, scored
with lm-eval, DeMix's sampler, the recommendation scored on the report tasks, then resumed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from demix.run import RunDir
from demix.search import run_search
from tests.conftest import copy_run, tiny_config


def test_demix_search_on_the_tiny_run(trained_run: RunDir, tmp_path: Path) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    cfg = tiny_config(run.root, "search.sampler=demix", "search.n_trials=6")
    study = run_search(cfg, run, progress=False)
    domains = json.loads(run.manifest.read_text())["domains"]
    names = [d["name"] for d in domains]
    trials = [t for t in study.trials if "baseline" not in t.user_attrs]
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:
        assert t.user_attrs["merge_s"] > 0 and t.user_attrs["eval_s"] > 0
        assert set(t.user_attrs["bpb"]) == set(names)
        assert np.isfinite(t.value)
    rows = list(csv.DictReader(run.trials_csv.open()))
    assert len(rows) == len(names) + 2 + 6
    head = list(rows[0])
    assert [c for c in head if c.startswith("loss:")] == [f"loss:{d}" for d in names]
    assert any(c.startswith("metric:") for c in head)
    assert all(float(r[f"loss:{names[0]}"]) > 0 for r in rows)
    rec = json.loads((run.search / "recommendation.json").read_text())
    assert set(rec["report"]) >= {"recommended", "uniform", "prior", "best_trial", "base_model"}
    assert np.isfinite(rec["report"]["recommended"]["objective"])
    assert rec["report"]["base_model"]["w"] is None  # the model the components started from
    # report tasks are not the search tasks
    search_tasks = {c.removeprefix("metric:") for c in head if c.startswith("metric:")}
    assert not search_tasks & set(rec["report"]["recommended"]["metrics"])
    # resuming does no new work and changes nothing
    again = run_search(cfg, run, progress=False)
    assert [t.values for t in again.trials] == [t.values for t in study.trials]


# qmc and random draw independently of the scores (their driver logic is tested in test_search_study).
@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes"])
def test_every_sampler_finishes_its_budget_on_real_proxies(
    trained_run: RunDir, tmp_path: Path, sampler: str
) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    cfg = tiny_config(run.root, f"search.sampler={sampler}", "search.n_trials=3")
    study = run_search(cfg, run, progress=False)
    trials = [t for t in study.trials if "baseline" not in t.user_attrs]
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" and np.isfinite(t.value) for t in trials)
    ws = [np.array(t.user_attrs["w"]) for t in trials]
    assert all(np.isclose(w.sum(), 1.0) and (w >= 0).all() for w in ws)
    assert len({tuple(np.round(w, 6)) for w in ws}) == 3  # three different proxies were merged


def test_scoring_the_base_checkpoint_leaves_the_next_merge_exact(trained_run: RunDir, tmp_path: Path) -> None:
    from demix.evaluate import Evaluator, load_checkpoint
    from demix.search.proxy import ProxyScorer

    run = copy_run(trained_run, tmp_path / "run")
    cfg = tiny_config(run.root)
    sc = ProxyScorer(cfg, run)
    w = np.full(len(sc.engine.names), 1.0 / len(sc.engine.names))
    before = sc.score(w, "report")
    base = sc.score_checkpoint(run.base, "report")
    after = sc.score(w, "report")
    assert {k: m.value for k, m in after.metrics.items()} == {k: m.value for k, m in before.metrics.items()}
    model, tok = load_checkpoint(run.base, cfg.evaluate)
    direct = Evaluator(cfg, run, model, tok, sc.suite).evaluate("report")
    assert {k: m.value for k, m in base.metrics.items()} == {k: m.value for k, m in direct.metrics.items()}
    assert base.bpb != before.bpb
