"""``kill -9`` during each stage of ``demix run``, then the same command again: the run ends with the
outputs of an uninterrupted run.

The uninterrupted reference is built once: prepare and training are the session's ``trained_run``,
search to report run on a copy of it (in-process, ``demix.cli.main``). Each case copies the stages
before the one under test from the reference, starts ``python -m demix run ... --until STAGE`` as a
subprocess in its own process group, kills the group with SIGKILL once the stage has written its
first output (or a short delay after it started), reruns the same command and compares every file
of the run with the reference (:func:`tests.run_compare.differences` says what is masked: times,
durations and the run's own path, nothing else).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from demix.cli import main
from demix.run import RunDir
from tests.conftest import TINY_CONFIG, copy_run, tiny_config
from tests.run_compare import differences

# A smaller search than tiny.yaml's (the baselines are 7 proxies whatever n_trials is).
SETS = ("search.n_trials=2", "evaluate.builtin.accuracy_docs=24", "evaluate.builtin.bpb_docs=8")
ORDER = ("prepare", "train-base", "train-components", "search", "law", "recommend", "export", "report")


def argv(run: Path, until: str | None = None) -> list[str]:
    sets = [a for s in SETS for a in ("--set", s)]
    return ["run", str(TINY_CONFIG), "--run-dir", str(run), *sets, *(["--until", until] if until else [])]


def run_in_process(args: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0


def env() -> dict[str, str]:
    return {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def reference(trained_run: RunDir, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """The uninterrupted run: the session's prepared and trained run, then search to report."""
    from demix.pipeline.keys import stage_inputs
    from demix.run.records import mark_stage_done

    ref = copy_run(trained_run, tmp_path_factory.mktemp("kill") / "reference")
    # The fixture trained with the library functions, which keep no stage records: record them as
    # `demix run` would have, so that the run goes on from the search.
    inputs = stage_inputs(tiny_config(ref.root, *SETS))
    for name in ORDER[:3]:
        now = inputs[name]
        mark_stage_done(ref.root, name, now.hash, keys=now.keys, needs=now.needs)
    run_in_process(argv(ref.root))
    return ref


def _earlier(ref: RunDir, dst: Path, stage: str) -> RunDir:
    """A copy of the reference with the stages before ``stage`` done and nothing of the others."""
    keep = ORDER[: ORDER.index(stage)]
    parts = {
        "prepare": ("data",),
        "train-base": ("models/base",),
        "train-components": ("models/components",),
        "search": ("search", "tasks"),
        "law": ("law",),
        "recommend": ("export/recommendation.json",),
        "export": ("export",),
    }
    (dst / "export").mkdir(parents=True)  # copy_run copies a file only into an existing folder
    run = copy_run(ref, dst, parts=("config.yaml", *(p for s in keep for p in parts[s])))
    if stage == "export":  # export writes into the folder recommend wrote its choice to
        for p in (dst / "export").iterdir():
            if p.name != "recommendation.json":
                p.unlink()
    (dst / ".stages").mkdir()
    for s in keep:
        shutil.copy2(ref.root / ".stages" / f"{s}.json", dst / ".stages" / f"{s}.json")
    return run


class Kill(NamedTuple):
    stage: str  # the ``--until`` stage
    trigger: Callable[[Path], bool]  # kill once this holds for the run directory
    delay: float  # or this many seconds after the stage started, whichever comes first


def _any(pattern: str) -> Callable[[Path], bool]:
    return lambda root: any(root.glob(pattern))


KILLS = [
    Kill("prepare", _any("data/.stamps/*.json"), 60.0),  # the first domain is packed
    Kill("train-base", _any("models/base/checkpoint/state.json"), 60.0),  # after its first checkpoint
    Kill("search", _any("search/trials.csv"), 120.0),  # baselines and one of two trials scored
    Kill("law", _any("law/*"), 1.0),
    Kill("recommend", _any("export/recommendation.json"), 0.5),
    Kill("export", _any("export/recommended_mixture*"), 0.3),
    Kill("report", _any("report/plots/*"), 1.0),
]


def kill_mid_stage(run: Path, kill: Kill, log: Path) -> int:
    """Start ``demix run --until STAGE``; SIGKILL its process group mid-stage; return its exit code."""
    cmd = [sys.executable, "-m", "demix", *argv(run, kill.stage)]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    started: float | None = None
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if started is None and f"== {kill.stage}\n" in log.read_text(errors="replace"):
            started = time.monotonic()
        if started is not None and (kill.trigger(run) or time.monotonic() - started > kill.delay):
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


@pytest.mark.parametrize("kill", KILLS, ids=lambda k: k.stage)
def test_kill9_mid_stage_then_rerun_gives_the_uninterrupted_outputs(
    kill: Kill, reference: RunDir, tmp_path: Path
) -> None:
    run = _earlier(reference, tmp_path / "run", kill.stage)
    rc = kill_mid_stage(run.root, kill, tmp_path / "killed.log")
    log = (tmp_path / "killed.log").read_text(errors="replace")
    assert rc == -signal.SIGKILL, f"the stage ended before the kill (exit {rc}):\n{log[-3000:]}"
    assert "Traceback" not in log, log[-3000:]
    run_in_process(argv(run.root, kill.stage))
    diff = differences(reference.root, run.root, ORDER[: ORDER.index(kill.stage) + 1])
    assert not diff, "\n".join(diff)


def test_a_second_run_on_a_loaded_machine_gives_the_same_outputs(reference: RunDir, tmp_path: Path) -> None:
    """Reproducible: the search to the report again, in another process while the machine is kept
    busy, writes what the reference wrote (times masked, nothing else): scores, trials, the law,
    the recommended mixture to the last digit. (Training is deterministic on one thread too: the
    kill test's train-base case compares its weights byte for byte.)"""
    run = _earlier(reference, tmp_path / "run", "search")
    # One busy loop per core but one: with this run and the suite's other worker, more runnable
    # processes than cores (more would only slow the rest of the suite).
    busy = max(1, (os.cpu_count() or 2) - 1)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        r = subprocess.run(
            [sys.executable, "-m", "demix", *argv(run.root)],
            env=env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        for b in burners:
            b.kill()
            b.wait()
    assert r.returncode == 0, r.stderr[-3000:]
    diff = differences(reference.root, run.root, ORDER)
    assert not diff, "\n".join(diff)
