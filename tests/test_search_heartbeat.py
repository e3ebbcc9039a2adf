"""Heartbeats on an RDB storage: a trial held by a worker that was killed (here: one that says it runs
on another machine, so only its silence can tell it is gone) is failed and retried, and the search
finishes its exact budget. SQLite stands in for PostgreSQL: both are Optuna's RDBStorage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from demix.run import RunDir
from demix.search import run_search
from demix.search import storage as st
from tests.test_search_scoring import TESTS_ROOT, slow_scorer, synthetic_config

# A worker "on another host" pops the next ticket, draws nothing, beats once a second, then waits to
# be killed. demix:worker names a foreign host, so the driver's own same-host recovery leaves it.
_WORKER = """
import sys, time
sys.path.insert(0, {root!r})
import optuna
from demix.search import storage as st
st.HEARTBEAT_S = 1
study = optuna.load_study(study_name="synth", storage=st.open_storage(st.StorageSpec("rdb", {url!r}, "db")))
st.ensure_tickets(study, {n})
tid = st.pop_ticket(study)
study._storage.set_trial_system_attr(tid, st.WORKER, "elsewhere:1")
with st.heartbeat(study, tid):
    print("holding", tid, flush=True)
    time.sleep(600)
"""


def _rdb(url: str) -> st.StorageSpec:
    return st.StorageSpec("rdb", url, "study.db")


def test_open_storage_beats_through_optunas_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    spec = _rdb(f"sqlite:///{tmp_path / 'hb.db'}")
    study = optuna.create_study(study_name="s", storage=st.open_storage(spec))
    assert type(study._storage).__name__ == "_CachedStorage"  # what the driver holds
    assert st.heartbeat_enabled(study._storage)
    plain = optuna.create_study(
        study_name="p", storage=st.open_storage(st.resolve_storage(tmp_path, None, 1))
    )
    assert not st.heartbeat_enabled(plain._storage)  # the run's own SQLite file: no heartbeats


def test_a_silent_workers_trial_is_failed_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna

    monkeypatch.setattr(st, "HEARTBEAT_S", 1)  # stale after 3 s without a beat
    url = f"sqlite:///{tmp_path / 'study.db'}"
    monkeypatch.setattr("demix.search.context.resolve_storage", lambda *a: _rdb(url))
    _, cfg = synthetic_config(tmp_path, sampler="random", n_trials=2)
    run = RunDir.for_config(cfg)
    kw = {"storage": url, "scorer_factory": slow_scorer, "progress": False, "recommend": False}
    run_search(cfg, run, **kw)  # type: ignore[arg-type]

    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(root=str(TESTS_ROOT.parent), url=url, n=3))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("holding"), "the worker failed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    study = optuna.load_study(study_name="synth", storage=url)
    held = [t for t in study.get_trials() if t.state.name == "RUNNING"]
    assert len(held) == 1 and held[0].system_attrs[st.WORKER] == "elsewhere:1"

    study = run_search(cfg, run, n_trials=3, **kw)  # type: ignore[arg-type]
    trials = {t.number: t for t in study.get_trials() if "baseline" not in t.user_attrs}
    dead = trials[held[0].number]
    assert dead.state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].system_attrs[st.SLOT] == dead.system_attrs[st.SLOT]
    assert retries[0].system_attrs[st.WORKER] != "elsewhere:1"
    done = sorted(t.system_attrs[st.SLOT] for t in trials.values() if t.state.name == "COMPLETE")
    assert done == [0, 1, 2]  # the exact budget, the killed ticket scored once
