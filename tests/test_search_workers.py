"""Many workers on one study (journal file, PostgreSQL) and crash safety (kill -9, then rerun).

The scorer is synthetic (tests/test_search_scoring.py): these tests are about storage, tickets and
recovery, which do not depend on what a trial measures.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from demix.run import RunDir
from demix.search import run_search
from tests.test_search_scoring import TESTS_ROOT, slow_scorer, synthetic_config


def _search_trials(study) -> list:  # type: ignore[no-untyped-def]
    return [t for t in study.get_trials(deepcopy=False) if "baseline" not in t.user_attrs]


def _check_exact(study, n_trials: int) -> None:  # type: ignore[no-untyped-def]
    trials = _search_trials(study)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    summary = [
        (t.number, t.state.name, t.system_attrs.get("demix:slot"), t.system_attrs.get("failed_trial"))
        for t in trials
    ]
    assert len(done) == n_trials, summary
    slots = collections.Counter(t.system_attrs["demix:slot"] for t in done)
    assert all(c == 1 for c in slots.values()), slots  # no ticket scored twice
    assert sorted(slots) == list(range(n_trials))
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    baselines = [
        t.user_attrs["baseline"] for t in study.get_trials(deepcopy=False) if "baseline" in t.user_attrs
    ]
    assert sorted(baselines) == sorted(
        ["uniform", "prior", "only:prose", "only:code", "only:math", "only:tables"]
    )


def test_two_workers_share_a_journal(tmp_path: Path) -> None:
    _, cfg = synthetic_config(tmp_path, sampler="tpe", n_trials=10)
    run = RunDir.for_config(cfg)
    study = run_search(cfg, run, workers=2, scorer_factory=slow_scorer, progress=False, recommend=False)
    assert (run.search / "journal.log").is_file()
    _check_exact(study, 10)
    workers = {t.system_attrs["demix:worker"] for t in _search_trials(study)}
    assert len(workers) == 2  # both processes took trials
    rows = (run.trials_csv).read_text().splitlines()
    assert len(rows) == 1 + 6 + 10


def _postgres_url() -> str:
    url = os.environ.get("DEMIX_TEST_POSTGRES_URL")
    required = os.environ.get("DEMIX_REQUIRE_POSTGRES") == "1"
    if not url:
        if required:
            pytest.fail("DEMIX_REQUIRE_POSTGRES=1 but DEMIX_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL (set DEMIX_TEST_POSTGRES_URL)")
    try:
        import sqlalchemy

        from demix.search.storage import with_driver

        sqlalchemy.create_engine(with_driver(url)).connect().close()
    except Exception as e:
        if required:
            pytest.fail(f"DEMIX_REQUIRE_POSTGRES=1 but {url} is unreachable: {e}")
        pytest.skip(f"PostgreSQL unreachable: {e}")
    return url


def test_two_workers_on_postgres(tmp_path: Path) -> None:
    url = _postgres_url()
    name = f"demix-test-{uuid.uuid4().hex[:12]}"
    _, cfg = synthetic_config(tmp_path, f"search.study_name={name}", sampler="random", n_trials=8)
    run = RunDir.for_config(cfg)
    study = run_search(
        cfg, run, workers=2, storage=url, scorer_factory=slow_scorer, progress=False, recommend=False
    )
    _check_exact(study, 8)
    assert len({t.system_attrs["demix:worker"] for t in _search_trials(study)}) == 2
    import optuna

    from demix.search.storage import with_driver

    url = with_driver(url)
    again = optuna.load_study(study_name=name, storage=url)  # a fresh connection sees the same trials
    assert len(again.trials) == 6 + 8
    optuna.delete_study(study_name=name, storage=url)


_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from demix.config import load_config
from demix.run import RunDir
from demix.search import run_search
from tests.test_search_scoring import slow_scorer
if __name__ == "__main__":
    cfg = load_config({cfg!r})
    run_search(cfg, RunDir.for_config(cfg), workers={workers}, scorer_factory=slow_scorer, progress=False,
               recommend=False)
"""


def _launch(tmp_path: Path, cfg_path: Path, workers: int) -> subprocess.Popen:
    script = tmp_path / "search.py"
    script.write_text(_SCRIPT.format(root=str(TESTS_ROOT.parent), cfg=str(cfg_path), workers=workers))
    return subprocess.Popen([sys.executable, str(script)], start_new_session=True)


def _wait_rows(csv: Path, rows: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if csv.is_file() and len(csv.read_text().splitlines()) >= rows:
            return
        assert proc.poll() is None, "search ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError("search made no progress")


@pytest.mark.parametrize("workers", [1, 2])
def test_kill9_then_rerun_keeps_every_completed_trial(tmp_path: Path, workers: int) -> None:
    import optuna

    cfg_path, cfg = synthetic_config(tmp_path, sampler="random", n_trials=8)
    run = RunDir.for_config(cfg)
    proc = _launch(tmp_path, cfg_path, workers)
    _wait_rows(run.trials_csv, 1 + 6 + 3, proc)  # header, baselines, three search trials
    time.sleep(0.12)  # well inside the next trial (0.25 s each)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-trial
    proc.wait()
    storage = f"sqlite:///{run.search / 'study.db'}" if workers == 1 else None
    if storage is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(str(run.search / "journal.log")))
    before = optuna.load_study(study_name="synth", storage=storage)
    kept = {t.number: t.values for t in before.get_trials() if t.state.name == "COMPLETE"}
    running = [t.number for t in before.get_trials() if t.state.name == "RUNNING"]
    assert running, "the kill should have interrupted a trial"
    proc = _launch(tmp_path, cfg_path, workers)
    assert proc.wait(timeout=120) == 0
    after = optuna.load_study(study_name="synth", storage=storage)
    _check_exact(after, 8)
    by_number = {t.number: t for t in after.get_trials()}
    for n, values in kept.items():
        assert by_number[n].state.name == "COMPLETE" and by_number[n].values == values
    for n in running:
        assert by_number[n].state.name == "FAIL"
        retry = [t for t in after.get_trials() if t.system_attrs.get("failed_trial") == n]
        assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
        if len(by_number[n].params) == 4:  # killed after drawing its weights: retried with the same
            assert retry[0].params == by_number[n].params
