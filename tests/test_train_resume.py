"""Kill -9 in the middle of a component's training, rerun: it resumes and ends where an uninterrupted
run ends. Bad checkpoints and changed settings end with exit code 2 and a message naming them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from demix.run import RunDir
from tests.conftest import TINY_CONFIG, copy_run, tiny_config

SETTINGS = ("train.component_tokens=40K", "train.checkpoint_every=10", "train.eval_every=1000")


def _cli(run: RunDir, *extra: str) -> list[str]:
    sets = [a for s in SETTINGS for a in ("--set", s)]
    return [
        sys.executable,
        "-m",
        "demix",
        "train",
        "components",
        str(TINY_CONFIG),
        "--run-dir",
        str(run.root),
        "--domain",
        "math",
        "--quiet",
        *sets,
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}


def test_kill_and_resume_reaches_the_uninterrupted_weights(trained_run: RunDir, tmp_path: Path) -> None:
    from demix.train import train_components

    whole = copy_run(trained_run, tmp_path / "whole", parts=("data", "models/base"))
    train_components(tiny_config(whole.root, *SETTINGS), whole, ["math"], progress=False)

    run = copy_run(trained_run, tmp_path / "killed", parts=("data", "models/base"))
    ckpt = run.component("math") / "checkpoint" / "state.json"
    proc = subprocess.Popen(_cli(run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert ckpt.exists() and not (run.component("math") / "model.safetensors").exists()

    # resuming with other settings is refused, naming the checkpoint and the key
    changed = _cli(run, "--set", "train.component_tokens=50K")
    bad = subprocess.run(changed, env=_env(), capture_output=True, text=True)
    assert bad.returncode == 2, bad.stderr
    assert str(run.component("math") / "checkpoint") in bad.stderr
    assert "tokens: 40000 -> 50000" in bad.stderr and "Traceback" not in bad.stderr

    # a corrupt checkpoint is named
    broken = copy_run(run, tmp_path / "broken", parts=("data", "models"))
    weights = broken.component("math") / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    bad = subprocess.run(_cli(broken), env=_env(), capture_output=True, text=True)
    assert bad.returncode == 2 and str(weights) in bad.stderr and "Traceback" not in bad.stderr

    done = subprocess.run(_cli(run), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a = load_file(whole.component("math") / "model.safetensors")
    b = load_file(run.component("math") / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    log = (run.component("math") / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 40  # the steps after the checkpoint were redone, not logged twice


@pytest.mark.parametrize("what", ["missing", "corrupt"])
def test_missing_or_corrupt_base_is_exit_2(trained_run: RunDir, tmp_path: Path, what: str) -> None:
    run = copy_run(trained_run, tmp_path / "run", parts=("data",))
    if what == "corrupt":
        shutil.copytree(trained_run.models / "base", run.models / "base")
        (run.base / "train_summary.json").write_text("{not json")
    bad = subprocess.run(_cli(run), env=_env(), capture_output=True, text=True)
    assert bad.returncode == 2 and str(run.base) in bad.stderr and "Traceback" not in bad.stderr
