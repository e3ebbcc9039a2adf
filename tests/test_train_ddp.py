"""DDP: two CPU processes (gloo, via torchrun) follow the same loss curve as one process with the same
global batch (grad_accum=2), because micro-batch slot s = rank·grad_accum + micro draws the same data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from demix.run import RunDir
from tests.conftest import TINY_CONFIG, copy_run, tiny_config

SETTINGS = (
    "train.base_tokens=16K",
    "train.eval_every=4",
    "train.checkpoint_every=1000",
    "train.warmup_frac=0.25",
)


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_two_process_ddp_matches_one_process(prepared_run: RunDir, tmp_path: Path) -> None:
    from demix.train import train_base

    single = copy_run(prepared_run, tmp_path / "single", parts=("data",))
    train_base(tiny_config(single.root, *SETTINGS, "train.grad_accum=2"), single, progress=False)

    ddp = copy_run(prepared_run, tmp_path / "ddp", parts=("data",))
    sets = [a for s in SETTINGS for a in ("--set", s)]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "demix",
        "train",
        "base",
        str(TINY_CONFIG),
        "--run-dir",
        str(ddp.root),
        "--quiet",
        *sets,
    ]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]

    a, b = _rows(single.base / "train_log.jsonl"), _rows(ddp.base / "train_log.jsonl")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 9))
    for ra, rb in zip(a, b, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-4, abs=1e-4), (ra, rb)
        assert rb["tokens"] == ra["tokens"]
    ea, eb = _rows(single.base / "eval_log.jsonl"), _rows(ddp.base / "eval_log.jsonl")
    assert [e["step"] for e in eb] == [0, 4, 8]
    for xa, xb in zip(ea, eb, strict=True):
        for d, v in xa["loss"].items():
            assert xb["loss"][d] == pytest.approx(v, abs=1e-3)
    summary = json.loads((ddp.base / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_batch_sequences"] == 32
    wa, wb = load_file(single.base / "model.safetensors"), load_file(ddp.base / "model.safetensors")
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-3, atol=1e-4, msg=k)
