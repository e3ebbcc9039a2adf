"""``engine_for_run`` on the session's trained tiny run: components in manifest order, merged in place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from demix.config import ExperimentConfig
from demix.data.manifest import Manifest
from demix.merge import engine_for_run
from demix.run import RunDir

REPO = Path(__file__).resolve().parents[1]


def test_engine_for_run_merges_components(tiny_cfg: ExperimentConfig, trained_run: RunDir) -> None:
    from transformers import AutoModelForCausalLM

    names = Manifest.load(trained_run).names
    engine = engine_for_run(tiny_cfg, trained_run)
    assert engine.names == names
    assert [c.root for c in engine.checkpoints] == [trained_run.component(d) for d in names]
    w = np.arange(1, len(names) + 1, dtype=np.float64)
    engine.merge(w)
    w /= w.sum()
    sds = [AutoModelForCausalLM.from_pretrained(trained_run.component(d)).state_dict() for d in names]
    for k, v in engine.model.state_dict().items():
        exp = sum(float(wi) * sd[k].to(v.dtype) for wi, sd in zip(w, sds, strict=True))
        torch.testing.assert_close(v, exp, rtol=1e-5, atol=1e-6, msg=k)


def test_cli_export_of_a_run_has_the_tokenizer(
    tiny_cfg: ExperimentConfig, trained_run: RunDir, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    names = Manifest.load(trained_run).names
    out = tmp_path / "proxy"
    weights = ",".join(f"{d}={1.0 if i == 0 else 0.0}" for i, d in enumerate(names))
    env = {**os.environ, "TQDM_DISABLE": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "demix",
            "merge",
            str(trained_run.root),
            "--weights",
            weights,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.eos_token is not None
    got = AutoModelForCausalLM.from_pretrained(out).state_dict()
    ref = AutoModelForCausalLM.from_pretrained(trained_run.component(names[0])).state_dict()
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0, msg=k)
