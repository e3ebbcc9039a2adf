"""The pipeline's stage bookkeeping, the CLI's start-up cost, and `demix run` on the tiny run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demix.config import ExperimentConfig
from demix.pipeline import STAGE_NAMES, downstream, run_all, stage_hashes, status
from demix.run import RunDir
from demix.run.records import mark_stage_done
from tests.conftest import copy_run, tiny_config


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "demix", *args], capture_output=True, text=True, cwd=cwd)


def test_help_does_not_import_heavy_libraries() -> None:
    code = "import sys; import demix.cli; print(sorted(m for m in ('torch','transformers','lm_eval','optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_changing_a_late_section_keeps_early_stages(tmp_path: Path) -> None:
    a = stage_hashes(tiny_config(tmp_path))
    b = stage_hashes(tiny_config(tmp_path, "export.target_tokens=7M"))
    changed = {n for n in STAGE_NAMES if a[n] != b[n]}
    assert "prepare" not in changed and "train-components" not in changed
    assert {"export", "report"} <= changed
    c = stage_hashes(tiny_config(tmp_path, "train.lr=1e-3"))
    assert {n for n in STAGE_NAMES if a[n] != c[n]} >= {"train-base", "train-components", "search", "report"}
    assert a["prepare"] == c["prepare"]


def test_downstream_is_ordered_and_closed() -> None:
    assert downstream("search") == ["search", "law", "recommend", "export", "report"]
    assert downstream("train-components")[:2] == ["train-components", "search"]
    assert "validate" in downstream("train-components")


def test_status_reports_done_stale_pending(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    run = RunDir(tmp_path)
    mark_stage_done(run.root, "prepare", stage_hashes(cfg)["prepare"])
    mark_stage_done(run.root, "train-base", "an-old-hash")
    states = {s.name: s.state for s in status(cfg, run)}
    assert states["prepare"] == "done" and states["train-base"] == "stale" and states["search"] == "pending"


def test_unknown_stage_is_a_user_error(tmp_path: Path) -> None:
    out = _cli("run", "tests/configs/tiny.yaml", "--run-dir", str(tmp_path), "--force", "trian")
    assert out.returncode == 2, out.stderr
    assert "unknown stage 'trian'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_run_end_to_end_then_skips(trained_run: RunDir, tiny_cfg: ExperimentConfig, tmp_path: Path) -> None:
    run = copy_run(trained_run, tmp_path / "run")
    cfg = tiny_config(run.root)
    first = run_all(cfg, run)
    assert first["search"] == "ran" and first["report"] == "ran"
    rec = json.loads((run.export / "recommended_mixture.json").read_text())
    assert rec["provenance"]["demix_version"]
    assert (run.report / "report.html").is_file()
    again = run_all(cfg, run)
    assert set(again.values()) == {"skipped"}
    states = {s.name: s.state for s in status(cfg, run) if not s.optional}
    assert set(states.values()) == {"done"}
    redo = run_all(cfg, run, force=["export"])
    assert redo["export"] == "ran" and redo["report"] == "ran" and redo["search"] == "skipped"
