"""Benchmark one proxy merge, side by side in one run: mergekit to disk (what DeMix does), mergekit in
memory, and demix's fused merge into a live model; plus the device's copy bandwidth, the floor.

    python scripts/bench_merge.py --device cpu --components 4 --params 100M
    python scripts/bench_merge.py --device cuda --components 7 --params 1.7B --dtype bfloat16

Builds K random Qwen3-shaped components of ~P parameters (bf16 by default) as HF checkpoints in a
temporary directory, then times each way of forming Σ wᵢθᵢ. The floor is the time to read K·P and
write P at the measured copy bandwidth. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_count(text: str) -> int:
    mult = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9}
    t = text.strip().upper()
    return int(float(t[:-1]) * mult[t[-1]]) if t[-1] in mult else int(float(t))


def qwen3_config(params: int) -> Any:
    """A Qwen3-shaped config (tied embeddings, GQA, SwiGLU) with about ``params`` parameters.

    About 1.7B is Qwen3-1.7B's own shape (DeMix's model; the fit below would pick thousands of thin
    layers there); other sizes take the closest fit over a few widths.
    """
    from transformers import Qwen3Config

    best = None
    tiny = params < 2e6  # tests and smoke checks (Triton's CPU interpreter is slow)
    for hidden in (64, 128) if tiny else (256, 512, 768, 1024, 1536, 2048, 2560, 3072, 4096):
        vocab = 1_024 if tiny else 8_192 if params < 30e6 else 32_000 if hidden < 1536 else 151_936
        inter = 3 * hidden if hidden >= 1024 else int(8 / 3 * hidden) // 64 * 64
        heads = max(4, hidden // 128)
        kv = max(1, heads // 2)
        head_dim = 128 if hidden >= 1024 else 64
        per_layer = hidden * head_dim * (2 * heads + 2 * kv) + 3 * hidden * inter + 2 * hidden + 2 * head_dim
        layers = max(1, round((params - vocab * hidden) / per_layer))
        total = vocab * hidden + layers * per_layer + hidden
        if (params - vocab * hidden) > 0 and (best is None or abs(total - params) < best[0]):
            best = (abs(total - params), hidden, vocab, inter, heads, kv, head_dim, layers)
    if abs(params - 1.72e9) < 0.05 * 1.72e9:
        best = (0, 2048, 151_936, 6144, 16, 8, 128, 28)  # Qwen3-1.7B: 1,720,574,976 params
    assert best is not None
    _, hidden, vocab, inter, heads, kv, head_dim, layers = best
    return Qwen3Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        tie_word_embeddings=True,
        max_position_embeddings=4096,
        architectures=["Qwen3ForCausalLM"],
    )


def build_components(
    root: Path, k: int, params: int, dtype: Any, device: Any = "cpu"
) -> tuple[list[Path], int]:
    """K checkpoints: a shared random 'base' plus per-component noise (so merges are meaningful).

    ``device`` draws the random numbers (a GPU makes 7 x 1.7B in seconds); files are written from host.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    cfg = qwen3_config(params)
    with torch.device("meta"):
        shapes = {n: tuple(t.shape) for n, t in AutoModelForCausalLM.from_config(cfg).state_dict().items()}
    shapes.pop("lm_head.weight", None)  # tied to the embedding; checkpoints store it once
    gen = torch.Generator(device).manual_seed(0)
    rand = lambda s: torch.randn(s, generator=gen, device=device)  # noqa: E731
    base = {n: rand(s).mul_(0.02).to(dtype) for n, s in shapes.items()}
    dirs = []
    for i in range(k):
        d = root / f"component{i}"
        d.mkdir(parents=True)
        cfg.save_pretrained(d)
        tensors = {n: (t.float() + rand(t.shape).mul_(0.005)).to(dtype).cpu() for n, t in base.items()}
        save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
        del tensors
        dirs.append(d)
    return dirs, sum(math.prod(s) for s in shapes.values())


def copy_bandwidth(device: Any, nbytes: int = 512 << 20, repeats: int = 5) -> float:
    """Bytes moved per second (read + write) by a device-to-device copy."""
    import torch

    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * nbytes / statistics.median(times[1:])


def time_merges(engine: Any, w: list[float], repeats: int) -> list[float]:
    """Seconds of ``repeats`` merges into the live model (after one warm-up), alternating w and its
    reverse so no merge repeats the last one's weights."""
    times = []
    for i in range(repeats + 1):
        wi = list(w) if i % 2 else list(reversed(w))
        sync(engine.device)
        t0 = time.perf_counter()
        engine.merge(wi)
        sync(engine.device)
        times.append(time.perf_counter() - t0)
    return times[1:]


def floor_seconds(k: int, params: int, element_size: int, bandwidth: float) -> float:
    """The merge's floor: read K·P and write P elements at ``bandwidth`` bytes/s (read + write)."""
    return (k + 1) * params * element_size / bandwidth


def sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def rel_err(a: dict[str, Any], b: dict[str, Any]) -> float:
    """max over tensors of ||a - b|| / ||b|| (in fp32)."""
    worst = 0.0
    for name, ref in b.items():
        r = ref.float()
        worst = max(worst, float((a[name].float().cpu() - r).norm() / r.norm().clamp_min(1e-30)))
    return worst


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--components", type=int, default=4)
    ap.add_argument("--params", default="100M")
    ap.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    ap.add_argument("--repeats", type=int, default=7, help="demix merges timed (median)")
    ap.add_argument("--mergekit-repeats", type=int, default=2, help="mergekit runs timed (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads for all contenders")
    ap.add_argument("--workdir", type=Path, default=None, help="where components are written (default: temp)")
    args = ap.parse_args(argv)

    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from mergekit.merge_methods.api import merge_state_dicts
    from safetensors.torch import load_file

    from demix.merge import MergeEngine

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    k, params = args.components, parse_count(args.params)
    root = Path(tempfile.mkdtemp(prefix="bench_merge.", dir=args.workdir))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        t0 = time.perf_counter()
        dirs, p = build_components(root, k, params, dtype)
        log(f"built {k} components of {p:,} params ({args.dtype}) in {time.perf_counter() - t0:.1f}s")
        w = [float(i + 1) for i in range(k)]
        w = [x / sum(w) for x in w]

        # mergekit to disk: the DeMix repo's way (mergekit-yaml, then the evaluator loads the dir).
        mk_cfg = MergeConfiguration.model_validate(
            {
                "merge_method": "linear",
                "dtype": args.dtype,
                "models": [
                    {"model": str(d), "parameters": {"weight": wi}} for d, wi in zip(dirs, w, strict=True)
                ],
            }
        )
        opts = MergeOptions(
            copy_tokenizer=False, quiet=True, cuda=device.type == "cuda", write_model_card=False
        )
        disk_times = []
        for i in range(args.mergekit_repeats):
            out = root / f"mergekit{i}"
            sync(device)
            t0 = time.perf_counter()
            run_merge(mk_cfg, str(out), options=opts)
            disk_times.append(time.perf_counter() - t0)
        mk_out = load_file(str(root / "mergekit0" / "model.safetensors"))
        log(f"mergekit run_merge to disk: {[f'{t:.2f}s' for t in disk_times]}")

        # mergekit in memory: state dicts already loaded on the device.
        sds = [{n: t.to(device) for n, t in load_file(str(d / "model.safetensors")).items()} for d in dirs]
        mem_times = []
        for _ in range(args.mergekit_repeats):
            sync(device)
            t0 = time.perf_counter()
            merged = merge_state_dicts(sds, "linear", parameters={"weight": w})
            sync(device)
            mem_times.append(time.perf_counter() - t0)
        del merged, sds
        log(f"mergekit merge_state_dicts: {[f'{t * 1e3:.0f}ms' for t in mem_times]}")

        # demix: load once, then merge into the live model (median of several).
        t0 = time.perf_counter()
        engine = MergeEngine.from_checkpoints(dirs, device=args.device, dtype=dtype)
        load_s = time.perf_counter() - t0
        times = time_merges(engine, w, args.repeats)
        engine.merge(w)
        err = rel_err(engine.state_dict(), mk_out)
        demix_s = statistics.median(times)
        log(f"demix: load {load_s:.2f}s, merge {[f'{t * 1e3:.1f}ms' for t in times]} ({engine.backend})")

        bw = copy_bandwidth(device)
        floor_s = floor_seconds(k, p, torch.empty((), dtype=dtype).element_size(), bw)
        result = {
            "device": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"cpu ({os.cpu_count()} cores)",
            "components": k,
            "params": p,
            "dtype": args.dtype,
            "backend": engine.backend,
            "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "demix_ms": round(demix_s * 1e3, 2),
            "demix_load_s": round(load_s, 2),
            "mergekit_disk_ms": round(statistics.median(disk_times) * 1e3, 1),
            "mergekit_memory_ms": round(statistics.median(mem_times) * 1e3, 1),
            "speedup_vs_mergekit_disk": round(statistics.median(disk_times) / demix_s, 1),
            "speedup_vs_mergekit_memory": round(statistics.median(mem_times) / demix_s, 1),
            "copy_bandwidth_gbs": round(bw / 1e9, 2),
            "floor_ms": round(floor_s * 1e3, 2),
            "frac_of_floor": round(floor_s / demix_s, 3),
            "max_rel_err_vs_mergekit": float(f"{err:.3g}"),
        }
        print(
            f"demix {result['demix_ms']} ms | mergekit disk {result['mergekit_disk_ms']} ms | mergekit memory "
            f"{result['mergekit_memory_ms']} ms | floor {result['floor_ms']} ms ({result['frac_of_floor']:.0%} of floor)"
        )
        print(json.dumps(result))
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
