"""Every GPU number in one call: the device check to run when a GPU is lent (about 8 minutes).

    python scripts/gpu_check.py --out docs/gpu_check.json        # on one H100/H200
    python scripts/gpu_check.py --smoke                           # the same code paths on CPU (CI)
    python scripts/gpu_check.py --fetch-wheels .whl               # here, before: what the device lacks

Runs the parts below in order of value, each in its own process under its own time limit (a hang or a
crash is recorded and the next part runs), within one wall-clock budget. Writes one JSON (device,
versions, every figure with its target) after every part and prints a short table at the end.

    preflight       what must be carried (wheels the device cannot download) and whether it is there
    merge           7 x 1.7B bf16 components, Triton: fraction of the copy floor, error vs fp64
    stream          the same from pinned host memory, streamed to the GPU per merge
    train_eager     training step of the >= 100M model of configs/gpu-check.yaml in bf16: MFU
    train_compile   the same under torch.compile
    run             `demix run configs/gpu-check.yaml`: every stage, on CUDA
    live_vs_stock   LiveHFLM vs stock lm-eval HFLM(softmax_dtype="float32") on one proxy of that run
    search_workers  `demix search --workers 2` on that run, both workers on one GPU

``--smoke`` shrinks every size (configs/gpu-check.yaml through --set overrides, 3 small components)
and runs on CPU: Triton under TRITON_INTERPRET=1, torch.compile with the aot_eager backend (inductor's
C++ build alone takes minutes on 2 cores). Speed targets mean nothing there; correctness checks hold.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gpu_check_common import REPO, TRITON_CPU, Ctx, Part, demix_env, tail
from gpu_check_device import part_merge, part_preflight, part_stream, part_train_compile, part_train_eager
from gpu_check_pipeline import part_live_vs_stock, part_run, part_search_workers

# Distributions demix needs that the device image lacks (its package list, 2026-11), carried as
# wheels, and three small ones it has at versions nobody has read there, which the carried ones
# bound from below or above (pydantic: typing-extensions >= 4.16; datasets: fsspec <= 2026.9.0;
# lightgbm: narwhals >= 1.15). The preflight part walks demix's whole requirement tree on the machine
# it runs on and counts what is missing or out of range. pyarrow (datasets needs >= 24) would be 55 MB,
# past what a call carries beside the rest: the preflight says whether the image's satisfies it.
CARRY = [
    "alembic", "annotated-types", "chardet", "cmaes", "colorlog", "dataproperty", "datasets",
    "defusedxml", "dill", "evaluate", "fsspec", "lightgbm", "lm-eval", "mako", "mbstrdecoder",
    "more-itertools", "multiprocess", "narwhals", "nltk", "optuna", "pathvalidate", "pydantic",
    "pydantic-core", "pytablewriter", "rouge-score", "sqlalchemy", "sqlitedict", "tabledata", "tcolorpy",
    "typepy", "typing-extensions", "typing-inspection", "word2number",
]  # fmt: skip
WHEEL_PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                   "manylinux2014_x86_64", "manylinux1_x86_64"]  # fmt: skip


# The registry, in order of value: name, limit on one H100/H200 (s), limit under --smoke (s: hang
# guards, about 3x a quiet 2-core machine's time, since CI machines are shared), function, environment
# under --smoke.
PARTS = [
    Part("preflight", 60, 60, part_preflight),
    Part("merge", 150, 120, part_merge, TRITON_CPU),
    Part("stream", 100, 120, part_stream, TRITON_CPU),
    Part("train_eager", 60, 90, part_train_eager),
    Part("train_compile", 150, 180, part_train_compile),
    Part("run", 240, 360, part_run, TRITON_CPU),
    Part("live_vs_stock", 90, 120, part_live_vs_stock, TRITON_CPU),
    Part("search_workers", 120, 300, part_search_workers, TRITON_CPU),
]


# ---- the runner -------------------------------------------------------------------------------------


def run_part(p: Part, ctx: Ctx, limit: float) -> dict[str, Any]:
    """Run one part in a child process under ``limit`` seconds; a crash or hang is recorded."""
    logs = ctx.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result = logs / f"{p.name}.json"
    result.unlink(missing_ok=True)
    child = Ctx(ctx.smoke, ctx.workdir, str(result))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--part",
        p.name,
        json.dumps(asdict(child)),
    ]
    # --smoke: one thread per process; on a shared 2-core machine OpenMP's spinning threads make
    # evaluation 10-20x slower than one thread does.
    env = demix_env({"OMP_NUM_THREADS": "1", **p.smoke_env} if ctx.smoke else None)
    log_path = logs / f"{p.name}.log"
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True
        )
        try:
            proc.wait(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        with contextlib.suppress(ProcessLookupError):  # the part's own children too (search workers)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    seconds = round(time.perf_counter() - t0, 1)
    text = log_path.read_text(errors="replace")
    if result.is_file():
        out = json.loads(result.read_text())
    elif timed_out:
        out = {"status": "failed", "error": f"timed out after {limit:.0f} s"}
    else:
        out = {"status": "failed", "error": f"the part's process exited {proc.returncode} without a result"}
    out["seconds"] = seconds
    out["limit_s"] = round(limit)
    if out["status"] == "failed":
        out["log_tail"] = tail(text, 3000)
    return out


def child_main(name: str, ctx: Ctx) -> None:
    """In the part's own process: run it, write its result (ok, or failed with the error)."""
    p = next(p for p in PARTS if p.name == name)
    try:
        out: dict[str, Any] = {"status": "ok", **p.run(ctx)}
    except Exception as e:
        import traceback

        traceback.print_exc()
        out = {"status": "failed", "error": f"{type(e).__name__}: {tail(str(e), 2000)}"}
    Path(ctx.result).write_text(json.dumps(out, indent=1, default=str))


def machine() -> dict[str, Any]:
    """What ran the check, without importing torch: GPUs (nvidia-smi), CPUs, memory, versions."""
    import importlib.metadata as md

    gpu = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        q = "--query-gpu=name,memory.total,driver_version,clocks.max.sm"
        gpu = subprocess.run(["nvidia-smi", q, "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20).stdout.strip() or None  # fmt: skip
    versions = {}
    for name in ("torch", "triton", "transformers", "lm-eval", "optuna", "safetensors", "numpy", "pydantic"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {
        "gpu": gpu,
        "cpu": f"{platform.machine()}, {os.cpu_count()} cores",
        "memory_gb": round(mem / 1e9, 1) if mem else None,
        "python": platform.python_version(),
        "versions": versions,
        "git_commit": commit.stdout.strip() or None,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def default_workdir(smoke: bool) -> Path:
    """/dev/shm when it holds the 24 GB of components (no disk writes), else a temp directory."""
    shm = Path("/dev/shm")
    if not smoke and shm.is_dir() and shutil.disk_usage(shm).free > 30e9:
        return Path(tempfile.mkdtemp(prefix="demix-gpu-check.", dir=shm))
    return Path(tempfile.mkdtemp(prefix="demix-gpu-check."))


def summarize(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Parts by status, and the figures that missed: correctness checks apart from speed targets."""
    missed: dict[str, list[str]] = {"check": [], "target": []}
    for name, r in parts.items():
        for key, f in r.get("figures", {}).items():
            if f.get("met") is False:
                missed[f["kind"]].append(f"{name}.{key}")
    return {
        "ok": [n for n, r in parts.items() if r["status"] == "ok"],
        "failed": [n for n, r in parts.items() if r["status"] == "failed"],
        "skipped": [n for n, r in parts.items() if r["status"] == "skipped"],
        "checks_failed": missed["check"],
        "targets_missed": missed["target"],
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"\ndemix GPU check ({report['mode']}): {report['machine']['gpu'] or report['machine']['cpu']}")
    for name, r in report["parts"].items():
        shown = []
        for key, f in r.get("figures", {}).items():
            mark = "" if "met" not in f else (" ok" if f["met"] else f" MISS {f['target']}")
            shown.append(f"{key}={f['value']}{mark}")
        why = r.get("error") or r.get("reason") or ""
        print(
            f"  {name:<15} {r['status']:<7} {r.get('seconds', 0):>6.1f}s  {'; '.join(shown) or tail(why, 200)}"
        )
    s = report["summary"]
    print(f"ok {len(s['ok'])}, failed {len(s['failed'])}, skipped {len(s['skipped'])}; checks failed: "
          f"{s['checks_failed'] or 'none'}; targets missed: {s['targets_missed'] or 'none'}")  # fmt: skip


def run_all(ctx: Ctx, out: Path, budget: float, only: set[str], limits: dict[str, float]) -> dict[str, Any]:
    """Every part in order, each under min(its limit, what is left of ``budget``); the JSON is
    rewritten after each part, so a run stopped from outside keeps what it measured."""
    report: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "mode": ctx.mode,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "budget_s": budget,
        "machine": machine(),
        "targets": ctx.targets,
        "parts": {},
    }
    t0 = time.perf_counter()
    for p in PARTS:
        left = budget - (time.perf_counter() - t0)
        limit = min(limits.get(p.name, p.smoke_limit_s if ctx.smoke else p.limit_s), left)
        if p.name not in only:
            res: dict[str, Any] = {"status": "skipped", "reason": "not in --only"}
        elif ctx.smoke and p.gpu_only:
            res = {"status": "skipped", "reason": f"cannot run on CPU: {p.gpu_only}"}
        elif left < 5:
            res = {"status": "skipped", "reason": f"the {budget:.0f} s budget was spent"}
        else:
            print(f"== {p.name} (limit {limit:.0f} s)", flush=True)
            res = run_part(p, ctx, limit)
            print(f"   {res['status']} in {res['seconds']} s {res.get('error', '')}", flush=True)
        report["parts"][p.name] = res
        report["wall_s"] = round(time.perf_counter() - t0, 1)
        report["summary"] = summarize(report["parts"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="the same code paths on CPU at tiny sizes")
    ap.add_argument(
        "--out",
        type=Path,
        help="the JSON (default docs/gpu_check.json; --smoke: $TMPDIR/gpu_check.smoke.json)",
    )
    ap.add_argument("--workdir", type=Path, help="scratch space (default: /dev/shm or a temp dir, removed)")
    ap.add_argument("--budget", type=float, help="wall seconds for all parts (default 480; --smoke 1200)")
    ap.add_argument("--only", help="comma-separated parts to run (the others are skipped, saying so)")
    ap.add_argument("--limit", action="append", default=[], metavar="PART=SECONDS", help="a part's own limit")
    ap.add_argument(
        "--fetch-wheels", type=Path, metavar="DIR", help="download the device's missing wheels, exit"
    )
    ap.add_argument("--python-version", default="3.12", help="the device's Python, for --fetch-wheels")
    ap.add_argument("--part", nargs=2, metavar=("NAME", "CTX_JSON"), help=argparse.SUPPRESS)  # a child
    args = ap.parse_args(argv)
    if args.part:
        child_main(args.part[0], Ctx(**json.loads(args.part[1])))
        return 0
    if args.fetch_wheels:
        return fetch_wheels(args.fetch_wheels, args.python_version)
    names = [p.name for p in PARTS]
    only = set(args.only.split(",")) if args.only else set(names)
    limits = {k: float(v) for k, _, v in (x.partition("=") for x in args.limit)}
    if (only | set(limits)) - set(names):
        ap.error(f"unknown part(s) {sorted((only | set(limits)) - set(names))}; the parts are {names}")
    workdir = args.workdir.resolve() if args.workdir else default_workdir(args.smoke)
    workdir.mkdir(parents=True, exist_ok=True)
    out = args.out or (
        Path(tempfile.gettempdir()) / "gpu_check.smoke.json"
        if args.smoke
        else REPO / "docs" / "gpu_check.json"
    )
    budget = args.budget or (1200.0 if args.smoke else 480.0)
    try:
        report = run_all(Ctx(args.smoke, str(workdir)), out.resolve(), budget, only, limits)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(report)
    print(f"results: {out}")
    return 1 if report["summary"]["failed"] or report["summary"]["checks_failed"] else 0


def fetch_wheels(dest: Path, python_version: str) -> int:
    """Download (or build, for sdist-only ones) the wheels of CARRY at this machine's versions."""
    import importlib.metadata as md

    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    plat = [x for p in WHEEL_PLATFORMS for x in ("--platform", p)]
    failed = []
    for name in CARRY:
        try:
            spec = f"{name}=={md.version(name)}"
        except md.PackageNotFoundError:
            spec = name
        pinned = ["--python-version", python_version, "--implementation", "cp", *plat]
        got = subprocess.run(
            [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", *pinned, "-d", str(dest), spec]
        )
        if got.returncode != 0:  # no wheel on the index: build one here (pure Python, runs anywhere)
            got = subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(dest), spec])
        if got.returncode != 0:
            failed.append(spec)
    size = sum(f.stat().st_size for f in dest.glob("*.whl"))
    print(
        f"{len(list(dest.glob('*.whl')))} wheels, {size / 2**20:.1f} MiB in {dest}; failed: {failed or 'none'}"
    )
    print("on the device: python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "
          f"--target /tmp/site {dest}/*.whl && export PYTHONPATH=/tmp/site")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
