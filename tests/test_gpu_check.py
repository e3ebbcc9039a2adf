"""scripts/gpu_check.py: the device check runs every part on CPU (--smoke), and none is skipped silently.

The smoke run is what keeps the GPU check from rotting between device sessions: the same parts, the
same demix entry points, tiny sizes (Triton under its CPU interpreter).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.py"
sys.path.insert(0, str(REPO / "scripts"))

import gpu_check  # noqa: E402
import gpu_check_common as common  # noqa: E402


def _check(*args: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = Path(args[args.index("--out") + 1])
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


@pytest.mark.slow
def test_smoke_runs_every_part_and_every_check_holds(tmp_path: Path) -> None:
    proc, report = _check(
        "--out", str(tmp_path / "gpu_check.json"), "--workdir", str(tmp_path / "w"), timeout=1500
    )
    assert list(report["parts"]) == [p.name for p in gpu_check.PARTS]  # every registered part, in order
    for p in gpu_check.PARTS:
        r = report["parts"][p.name]
        if p.gpu_only:  # only a part that cannot run on CPU by nature may be skipped, and it says so
            assert r["status"] == "skipped" and "cannot run on CPU" in r["reason"], r
            continue
        assert r["status"] == "ok", (p.name, r.get("error"), r.get("log_tail"))
        assert r["figures"], p.name
        failed = {k: f for k, f in r["figures"].items() if f["kind"] == "check" and not f["met"]}
        assert not failed, (p.name, failed)
    assert report["summary"]["failed"] == [] and report["summary"]["checks_failed"] == []
    assert report["machine"]["versions"]["torch"] and report["targets"]["mfu"] == 0.4
    live = report["parts"]["live_vs_stock"]["figures"]["max_abs_score_diff"]
    assert live["target"] == "<= 0.0001" and live["met"]
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_a_hung_part_is_recorded_and_the_rest_still_runs(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    proc, report = _check(
        "--out", str(out), "--workdir", str(tmp_path / "w"), "--only", "preflight,train_eager",
        "--limit", "train_eager=1", timeout=300,
    )  # fmt: skip
    r = report["parts"]
    assert r["preflight"]["status"] == "ok" and r["preflight"]["figures"]["requirements_missing"]["met"]
    assert r["train_eager"]["status"] == "failed" and "timed out after 1 s" in r["train_eager"]["error"]
    assert {r[n]["reason"] for n in r if n not in ("preflight", "train_eager")} == {"not in --only"}
    assert report["summary"]["failed"] == ["train_eager"] and proc.returncode == 1


def test_a_part_that_raises_is_recorded_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(ctx: common.Ctx) -> dict:
        raise common.PartError("no trained components")

    monkeypatch.setattr(gpu_check, "PARTS", [*gpu_check.PARTS, common.Part("boom", 1, 1, boom)])
    result = tmp_path / "boom.json"
    gpu_check.child_main("boom", common.Ctx(smoke=True, workdir=str(tmp_path), result=str(result)))
    assert json.loads(result.read_text()) == {"status": "failed", "error": "PartError: no trained components"}


def test_figures_keep_the_unrounded_comparison() -> None:
    f = common.figure(1.0000301, 1.0, at_most=True, kind="check")
    assert f == {"value": 1.0, "kind": "check", "target": "<= 1", "met": False}
    assert common.figure(3, None) == {"value": 3, "kind": "info"}


def test_merge_error_allows_for_cancelling_terms_and_catches_a_bf16_sum() -> None:
    """The merge check measures rounding, not cancellation: an fp32 sum rounded once passes however its
    terms cancel (on some CPUs the smoke's random components hold such an element; 1.7B always do),
    and a sum accumulated in bf16 fails."""
    from types import SimpleNamespace

    import torch
    from gpu_check_device import error_vs_fp64

    n, k, block = 16, 3, 256
    gen = torch.Generator().manual_seed(0)
    stack = (torch.randn(n, k, block, generator=gen) * 0.02).to(torch.bfloat16)
    w = common.merge_weights(k)
    w32 = torch.tensor(w, dtype=torch.float32)
    cancel = stack[0, :2].float().T @ w32[:2] / -w32[2]  # the third term undoes the first two
    stack[0, 2] = cancel.to(torch.bfloat16)

    def measure(out: torch.Tensor) -> dict[str, float]:
        engine = SimpleNamespace(
            layout=SimpleNamespace(n_blocks=n, block=block), flat=out.reshape(-1), stack=stack,
            dtype=torch.bfloat16, device=torch.device("cpu"),
        )  # fmt: skip
        return error_vs_fp64(engine, w)

    fp32_sum = sum(w32[i] * stack[:, i].float() for i in range(k)).to(torch.bfloat16)
    exact = measure(fp32_sum)
    assert exact["max_ulp"] <= 0.51 and exact["raw_max_ulp"] > 2  # the cancelled elements, allowed for
    bf16_sum = torch.zeros(n, block, dtype=torch.bfloat16)
    for i in range(k):
        bf16_sum = bf16_sum + (w32[i] * stack[:, i].float()).to(torch.bfloat16)
    assert measure(bf16_sum)["max_ulp"] > 2


def test_preflight_names_a_module_that_does_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    import gpu_check_device

    monkeypatch.setattr(gpu_check_device, "PREFLIGHT_IMPORTS", ("json", "demix_no_such_module"))
    errors = gpu_check_device.failed_imports()
    assert list(errors) == ["demix_no_such_module"] and errors["demix_no_such_module"].startswith(
        "ModuleNotFound"
    )
