"""``demix evaluate`` end to end through the console script: a proxy, its exported checkpoint, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.handmade_run import DOMAINS, held_out, make_run, tiny_model, tiny_tokenizer

ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "COLUMNS": "200",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


def _demix(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "demix", *map(str, args)], capture_output=True, text=True, env=ENV, timeout=300
    )


@pytest.fixture(scope="module")
def run_with_components(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg, run = make_run(tmp_path_factory.mktemp("evalcli") / "run")
    tok = tiny_tokenizer([t for name, _ in DOMAINS for t in held_out(name)])
    tok.save_pretrained(run.tokenizer)
    for i, (name, _) in enumerate(DOMAINS):
        tiny_model(seed=10 + i).save_pretrained(run.component(name))
    return cfg, run


def test_proxy_scores_equal_its_exported_checkpoint(run_with_components: Any, tmp_path: Path) -> None:
    from demix.merge import engine_for_run
    from demix.mixture import parse_weights

    cfg, run = run_with_components
    weights = "prose=0.5,code=0.3,math=0.2"
    live = _demix(
        "evaluate", run.root, "--weights", weights, "--role", "search", "--out", tmp_path / "live.json"
    )
    assert live.returncode == 0, live.stderr
    assert "demix_equation_math_search" in live.stdout

    engine = engine_for_run(cfg, run)
    engine.merge(parse_weights(weights, engine.names, normalize=True))
    engine.save(tmp_path / "proxy", run.tokenizer)
    disk = _demix(
        "evaluate",
        run.root,
        "--checkpoint",
        tmp_path / "proxy",
        "--role",
        "search",
        "--out",
        tmp_path / "disk.json",
    )
    assert disk.returncode == 0, disk.stderr

    a, b = (json.loads((tmp_path / f).read_text()) for f in ("live.json", "disk.json"))
    assert a["source"]["weights"] == {"prose": 0.5, "code": 0.3, "math": 0.2}
    assert set(a["metrics"]) == {s for s in a["details"] if not s.startswith("demix_bpb_")}
    assert {k: m["value"] for k, m in a["metrics"].items()} == {
        k: m["value"] for k, m in b["metrics"].items()
    }
    assert a["bpb"] == b["bpb"] and set(a["bpb"]) == {n for n, _ in DOMAINS}
    assert all(m["stderr"] is not None for m in a["metrics"].values())


def test_malformed_task_file_exits_2_naming_it(run_with_components: Any, tmp_path: Path) -> None:
    _, run = run_with_components
    (tmp_path / "bad.yaml").write_text("task: broken\ndataset_path: [unclosed\n")
    r = _demix(
        "evaluate", run.root, "--weights", "prose=1", "--set", f"evaluate.include_paths=[{tmp_path}]",
        "--set", "evaluate.tasks=[{name: broken}]",
    )  # fmt: skip
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr and "Traceback" not in r.stderr


def test_unknown_task_exits_2_naming_it(run_with_components: Any) -> None:
    _, run = run_with_components
    r = _demix(
        "evaluate", run.root, "--weights", "prose=1", "--set", "evaluate.tasks=[{name: no_such_task_xyz}]"
    )
    assert r.returncode == 2
    assert "no_such_task_xyz" in r.stderr and "Traceback" not in r.stderr
