"""The GPU check's device-level parts: requirements, the merge kernel resident and streamed, training MFU."""

from __future__ import annotations

import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from gpu_check_common import CONFIG, Ctx, figure, merge_weights


def components(ctx: Ctx) -> tuple[list[Path], int]:
    """The merge parts' random components, built once per work directory (bench_merge's builder)."""
    import torch
    from bench_merge import build_components, parse_count

    s = ctx.size("merge")
    root = ctx.work / "components"
    done = root / "done.json"
    if done.is_file():
        info = json.loads(done.read_text())
        return [Path(d) for d in info["dirs"]], info["params"]
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    dirs, params = build_components(
        root, s["components"], parse_count(s["params"]), getattr(torch, s["dtype"]), device=ctx.device
    )
    done.write_text(json.dumps({"dirs": [str(d) for d in dirs], "params": params}))
    print(
        f"built {len(dirs)} components of {params:,} params in {time.perf_counter() - t0:.1f} s", flush=True
    )
    return dirs, params


def error_vs_fp64(engine: Any, w: list[float], chunk_bytes: int = 1 << 30) -> dict[str, float]:
    """The live model's merged weights against Σ wᵢθᵢ computed in float64 from the same stack.

    ``max_ulp``: the largest error in units of the stored dtype's spacing at the exact value, once the
    error an fp32 sum of K terms may carry is taken off: 2(K+1)·2⁻²⁴·Σ|wᵢθᵢ| (the weights rounded to
    fp32, K roundings of the sum, and twice that since rounding the sum to the dtype is monotone). An
    fp32 accumulation rounded once to nearest gives <= 0.5; truncation, as Triton's interpreter does,
    < 1; a sum accumulated in bf16 gives hundreds. Without the allowance an element whose terms cancel
    (|Σ| far below Σ|·|, thousands of them among 1.7B random weights) reads as 100+ ulp however exact
    the kernel: ``raw_max_ulp`` is that figure, for information.
    """
    import torch

    n_blocks, block, k = engine.layout.n_blocks, engine.layout.block, len(w)
    out = engine.flat.view(n_blocks, block)
    wd = torch.tensor(w, dtype=torch.float64, device=engine.device)
    half_eps = torch.finfo(engine.dtype).eps / 2
    slack = 2 * (k + 1) * 2.0**-24
    step = max(1, chunk_bytes // (k * block * 8))
    worst, raw, diff2, ref2 = 0.0, 0.0, 0.0, 0.0
    for b0 in range(0, n_blocks, step):
        rows = engine.stack[b0 : b0 + step, :k].to(engine.device).double()  # (n, K, block)
        ref = torch.einsum("nkb,k->nb", rows, wd)
        allowed = torch.einsum("nkb,k->nb", rows.abs_(), wd.abs()).mul_(slack)
        d = (out[b0 : b0 + step].double() - ref).abs()
        ulp = torch.ldexp(torch.full_like(ref, half_eps), torch.frexp(ref).exponent)  # eps * 2^floor(log2|x|)
        raw = max(raw, float((d / ulp).max()))
        worst = max(worst, float(((d - allowed).clamp_(min=0) / ulp).max()))
        diff2 += float(d.square().sum())
        ref2 += float(ref.square().sum())
    return {"max_ulp": worst, "raw_max_ulp": raw, "rel_l2": math.sqrt(diff2 / max(ref2, 1e-300))}


def host_to_device_bandwidth(device: Any, nbytes: int, repeats: int = 5) -> float:
    """Bytes per second of a copy from (pinned, on CUDA) host memory to ``device``."""
    import torch
    from bench_merge import sync

    src = torch.ones(nbytes, dtype=torch.uint8, pin_memory=device.type == "cuda")
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        dst.copy_(src, non_blocking=True)
        sync(device)
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times[1:])


# What the later parts import, beyond torch: demix's CLI (config, pydantic), lm-eval's HF model
# (accelerate, datasets and pyarrow under it), the search (optuna, sqlalchemy) and RegMix's regressor.
PREFLIGHT_IMPORTS = (
    "demix.cli",
    "demix.evaluate.fastlm",
    "demix.search.driver",
    "optuna",
    "lightgbm",
    "datasets",
)


def failed_imports() -> dict[str, str]:
    """Each module of PREFLIGHT_IMPORTS that does not import here, with its error."""
    import importlib

    errors = {}
    for name in PREFLIGHT_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception as e:  # a conflict can surface as any error at import time, not only ImportError
            errors[name] = f"{type(e).__name__}: {e}"
    return errors


def part_preflight(ctx: Ctx) -> dict[str, Any]:
    """Versions, the device, and demix's requirements: what is missing must be carried as wheels."""
    import torch
    from requirement_tree import project_requirements, walk  # tomllib: Python >= 3.11, as the device has

    tree = walk(project_requirements("gpu"))  # pyproject's dependencies and the gpu extra, over what is here
    missing, conflicts = tree.missing, tree.conflicts
    import_errors = failed_imports()
    free = shutil.disk_usage(ctx.work).free
    need = 0 if ctx.smoke else 30e9  # 7 x 1.7B bf16 components (24 GB) and the run
    figures = {
        "requirements_missing": figure(len(missing), 0, at_most=True, kind="check"),
        # an installed version outside a requirement's range: where a later part's ImportError comes from
        "requirement_conflicts": figure(len(conflicts), 0, at_most=True, kind="check"),
        # what a conflict actually breaks, before the parts that need it
        "imports_failed": figure(len(import_errors), 0, at_most=True, kind="check"),
        "workdir_free_gb": figure(free / 1e9, need / 1e9, kind="check"),
    }
    info: dict[str, Any] = {
        "to_carry": missing,  # as wheels: `python scripts/gpu_check.py --fetch-wheels .whl` where pip works
        "files_to_carry": "none: the data are generated (built-in corpora, a local BPE tokenizer, random "
        "components) and nothing is downloaded",
        "version_conflicts": conflicts,
        "import_errors": import_errors,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "workdir": str(ctx.work),
    }
    try:
        import triton

        info["triton"] = triton.__version__
        figures["triton_importable"] = figure(1, 1, kind="check")
    except ImportError as e:
        info["triton"] = f"not importable: {e}"
        figures["triton_importable"] = figure(0, 1, kind="check")
    if ctx.smoke:
        info["cuda"] = "not applicable on CPU (--smoke)"
    else:
        figures["cuda_available"] = figure(int(torch.cuda.is_available()), 1, kind="check")
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["cuda"] = {
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_gb": round(props.total_memory / 1e9, 1),
                "multiprocessors": props.multi_processor_count,
                "devices": torch.cuda.device_count(),
            }
    return {"figures": figures, "info": info}


def part_merge(ctx: Ctx) -> dict[str, Any]:
    """The Triton merge with the stack on the device: fraction of the copy floor, error vs fp64."""
    from bench_merge import copy_bandwidth, floor_seconds, time_merges

    from demix.merge import MergeEngine

    s = ctx.size("merge")
    dirs, _ = components(ctx)
    t0 = time.perf_counter()
    engine = MergeEngine.from_checkpoints(
        dirs, device=ctx.device, dtype=s["dtype"], backend="triton", stream=False
    )
    load_s = time.perf_counter() - t0
    w = merge_weights(engine.k)
    merge_s = statistics.median(time_merges(engine, w, s["repeats"]))
    engine.merge(w)
    err = error_vs_fp64(engine, w)
    bw = copy_bandwidth(engine.device, nbytes=s["bandwidth_bytes"])
    floor_s = floor_seconds(engine.k, engine.numel, engine.flat.element_size(), bw)
    return {
        "figures": {
            "frac_of_floor": figure(floor_s / merge_s, ctx.targets["merge_frac_of_floor"]),
            "max_ulp_vs_fp64": figure(err["max_ulp"], ctx.targets["merge_max_ulp"], at_most=True, kind="check"),
            "raw_max_ulp_vs_fp64": figure(err["raw_max_ulp"]),
            "rel_l2_vs_fp64": figure(err["rel_l2"]),
            "merge_ms": figure(merge_s * 1e3),
            "floor_ms": figure(floor_s * 1e3),
            "copy_bandwidth_gbs": figure(bw / 1e9),
        },
        "info": {"components": engine.k, "params": engine.numel, "dtype": s["dtype"], "backend": engine.backend,
                 "load_s": round(load_s, 2), "device": str(engine.device)},
    }  # fmt: skip


def part_stream(ctx: Ctx) -> dict[str, Any]:
    """The stack in pinned host memory, streamed to the GPU per merge: fraction of the H2D floor."""
    from bench_merge import time_merges

    from demix.merge import MergeEngine

    s, m = ctx.size("stream"), ctx.size("merge")
    dirs, _ = components(ctx)
    t0 = time.perf_counter()
    engine = MergeEngine.from_checkpoints(
        dirs, device=ctx.device, dtype=m["dtype"], backend="triton", stream=True
    )
    load_s = time.perf_counter() - t0
    if s["stream_bytes"]:
        engine.stream_bytes = s["stream_bytes"]  # several chunks even for tiny components
    w = merge_weights(engine.k)
    merge_s = statistics.median(time_merges(engine, w, s["repeats"]))
    engine.merge(w)
    err = error_vs_fp64(engine, w)
    h2d = host_to_device_bandwidth(engine.device, s["bandwidth_bytes"])
    floor_s = engine.k * engine.numel * engine.flat.element_size() / h2d  # the K rows cross the bus once
    figures = {
        "frac_of_floor": figure(floor_s / merge_s, ctx.targets["merge_frac_of_floor"]),
        "max_ulp_vs_fp64": figure(err["max_ulp"], ctx.targets["merge_max_ulp"], at_most=True, kind="check"),
        "merge_ms": figure(merge_s * 1e3),
        "floor_ms": figure(floor_s * 1e3),
        "h2d_bandwidth_gbs": figure(h2d / 1e9),
        "streamed": figure(int(engine.streamed), 1, kind="check"),
    }  # fmt: skip
    info = {"load_s": round(load_s, 2), "stream_bytes": engine.stream_bytes, "backend": engine.backend}
    if ctx.smoke:
        info["pinned"] = "not applicable on CPU (--smoke streams host to host)"
    else:
        figures["pinned"] = figure(int(engine.stack.is_pinned()), 1, kind="check")
    return {"figures": figures, "info": info}


def train_figures(ctx: Ctx, compile: bool) -> dict[str, Any]:
    """bench_train's measurement of the training step of configs/gpu-check.yaml's model."""
    from bench_train import measure

    from demix.config import load_config

    s = ctx.size("train")
    r = measure(load_config(CONFIG, ctx.sets), steps=s["steps"], warmup=s["warmup"], compile=compile,
                backend=s["backend"])  # fmt: skip
    figures = {
        "mfu": figure(r["mfu"], ctx.targets["mfu"]),
        "params": figure(r["params"], ctx.targets["min_params"]),
        "tokens_per_s": figure(r["tokens_per_s"]),
        "step_ms": figure(r["step_s"] * 1e3),
        "matmul_tflops": figure(r["matmul_flops_per_s"] / 1e12),
    }
    if compile:
        figures["first_step_s"] = figure(r["first_step_s"])  # compiling included
    info = {k: r[k] for k in ("device", "dtype", "compiled", "micro_batch", "seq_len")}
    return {"figures": figures, "info": {**info, "compile_backend": s["backend"] if compile else None}}


def part_train_eager(ctx: Ctx) -> dict[str, Any]:
    """Training MFU of the >= 100M model in bf16, eager."""
    return train_figures(ctx, compile=False)


def part_train_compile(ctx: Ctx) -> dict[str, Any]:
    """Training MFU of the same model under torch.compile."""
    return train_figures(ctx, compile=True)
