"""``demix validate`` on the tiny trained run: real reference training, real merge + lm-eval scoring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demix.config import dump_config
from demix.run import RunDir
from tests.conftest import copy_run, tiny_config


def test_validate_end_to_end_and_resume(trained_run: RunDir, tmp_path: Path) -> None:
    from demix.validate import validate

    run = copy_run(trained_run, tmp_path / "run")
    cfg = tiny_config(run.root, "validate.reference_tokens=2K", "validate.bootstrap=50",
                      "evaluate.builtin.bpb_docs=4", "evaluate.builtin.accuracy_docs=16")  # fmt: skip
    doc = validate(cfg, run, mixtures=3, progress=False)
    assert doc["n"] == 3 and len(doc["mixtures"]) == 3
    fid = doc["fidelity"]
    assert fid["k_top"] == 2
    groups = set(fid["spearman"]) - {"macro"}
    assert groups and set(fid["recovery"]) == groups | {"macro"}
    for m in doc["mixtures"]:
        assert Path(m["reference_dir"], "model.safetensors").is_file()
        assert sum(m["r"].values()) == pytest.approx(1.0)
        assert m["r"]["prose"] >= cfg.train.beta - 1e-9
        assert set(m["proxy"]) == set(m["reference"]) == set(doc["tasks"])
    for g in groups:
        rec = fid["recovery"][g]["value"]
        assert rec != rec or 0 < rec < 10  # NaN only when a group's tasks all score 0 on a reference
    saved = json.loads((run.validation / "validation.json").read_text())
    assert saved["provenance"]["inputs"]["mixtures"] and set(saved["fidelity"]) == set(fid)
    # resume: a lost score is measured again, but no reference is trained again
    stamps = {m["id"]: Path(m["reference_dir"], "model.safetensors").stat().st_mtime for m in doc["mixtures"]}
    (run.validation / "scores" / f"{doc['mixtures'][1]['id']}.json").unlink()
    again = validate(cfg, run, mixtures=3, progress=False)
    assert [m["id"] for m in again["mixtures"]] == list(stamps)
    for m in again["mixtures"]:
        assert Path(m["reference_dir"], "model.safetensors").stat().st_mtime == stamps[m["id"]]
    assert again["mixtures"][1]["reference"] == doc["mixtures"][1]["reference"]  # same model, same scores


def test_validate_cli_without_prepared_data_is_exit_2(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.yaml").write_text(dump_config(cfg))
    r = subprocess.run([sys.executable, "-m", "demix", "validate", str(tmp_path / "empty"), "--mixtures", "3"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "demix prepare" in r.stderr and "Traceback" not in r.stderr
