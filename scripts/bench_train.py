"""Training throughput: tokens/s and MFU of demix's training step, against the device's measured matmul rate.

Runs the trainer's own step (``demix.train.step``: AdamW, bf16 autocast + SDPA on GPU, optional
torch.compile) on random tokens, so it needs no prepared data. MFU counts 6N + 12·L·H·Q·T FLOPs per
token (PaLM appendix B) against a timed matmul in the training dtype on the same device.

    python scripts/bench_train.py                          # the demo's model (configs/demo.yaml)
    python scripts/bench_train.py --preset 125m --micro-batch 32 --seq-len 1024 --compile   # on a GPU
    python scripts/bench_train.py --config configs/demo.yaml --set model.num_layers=4 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# GPU-sized shapes (Qwen3-style); 1.7b is the DeMix paper's architecture.
PRESETS = {
    "125m": dict(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=12, intermediate_size=2048),
    "350m": dict(hidden_size=1024, num_layers=24, num_heads=16, num_kv_heads=8, intermediate_size=3072),
    "1.7b": dict(hidden_size=2048, num_layers=28, num_heads=16, num_kv_heads=8, intermediate_size=6144),
}


def measure(
    cfg: Any,
    *,
    vocab: int | None = None,
    steps: int = 20,
    warmup: int = 3,
    compile: bool = False,
    backend: str = "inductor",
) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) of ``cfg``'s model on random tokens.

    ``compile`` wraps the model in ``torch.compile(backend=backend)``.

    Returns the device, the model's size, the median step time, tokens/s and MFU against the
    device's measured matmul rate in the training dtype; ``first_step_s`` includes compiling.
    """
    import torch

    from demix.train import build_model, model_shape
    from demix.train.hardware import autocast_dtype, matmul_rate
    from demix.train.step import forward_backward, make_optimizer

    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    want = tc.device if tc.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(want)
    amp = autocast_dtype(tc, device)
    vocab = vocab or cfg.tokenizer.vocab_size
    model = build_model(cfg.model, vocab, seed=0).to(device)
    model.config.use_cache = False
    opt = make_optimizer(model, tc, tc.lr, device)
    step_model = torch.compile(model, backend=backend) if compile else model
    shape = model_shape(model)
    fpt = shape.flops_per_token(tc.seq_len)
    peak = matmul_rate(device, amp)
    tokens = tc.micro_batch_size * tc.seq_len
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(warmup + steps):
        x = torch.randint(0, vocab, (tc.micro_batch_size, tc.seq_len + 1), generator=gen).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        forward_backward(step_model, x, amp, 1)
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times[warmup:])
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": str(amp or torch.float32).removeprefix("torch."),
        "compiled": compile,
        "family": cfg.model.family,
        "params": shape.params,
        "non_embedding_params": shape.non_embedding,
        "vocab": model.config.vocab_size,
        "micro_batch": tc.micro_batch_size,
        "seq_len": tc.seq_len,
        "flops_per_token": fpt,
        "matmul_flops_per_s": peak,
        "first_step_s": times[0],
        "step_s": med,
        "steps_timed": steps,
        "tokens_per_s": tokens / med,
        "mfu": tokens / med * fpt / peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. model.num_layers=4")
    ap.add_argument(
        "--preset", choices=sorted(PRESETS), help="replace the model section by a GPU-sized shape"
    )
    ap.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: tokenizer.vocab_size)")
    ap.add_argument("--micro-batch", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = ap.parse_args()

    from demix.config import load_config

    sets = [*args.set, f"train.device={args.device}"]
    if args.preset:
        sets += [f"model.{k}={v}" for k, v in PRESETS[args.preset].items()]
        sets += ["model.max_position_embeddings=4096"]
    if args.seq_len:
        sets.append(f"train.seq_len={args.seq_len}")
    if args.micro_batch:
        sets.append(f"train.micro_batch_size={args.micro_batch}")
    if args.threads:
        sets.append(f"train.threads={args.threads}")
    r = measure(load_config(args.config, sets), vocab=args.vocab, steps=args.steps, warmup=args.warmup,
                compile=args.compile)  # fmt: skip
    print(f"device            {r['device']}, {r['dtype']}{', compiled' if r['compiled'] else ''}")
    print(
        f"model             {r['family']}, {r['params'] / 1e6:.2f}M params "
        f"({r['non_embedding_params'] / 1e6:.2f}M non-embedding), vocab {r['vocab']}"
    )
    print(
        f"batch             {r['micro_batch']} x {r['seq_len']} = {r['micro_batch'] * r['seq_len']} tokens/step"
    )
    print(f"FLOPs/token       {r['flops_per_token'] / 1e6:.2f} M  (6N + 12·L·H·Q·T)")
    print(f"matmul rate       {r['matmul_flops_per_s'] / 1e12:.3f} TFLOP/s (measured)")
    print(f"step time         {r['step_s'] * 1e3:.1f} ms (median of {r['steps_timed']})")
    print(f"tokens/s          {r['tokens_per_s']:,.0f}")
    print(f"MFU               {r['mfu']:.1%}")


if __name__ == "__main__":
    main()
