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

REPO = Path(__file__).resolve().parents[1]

# GPU-sized shapes (Qwen3-style); 1.7b is the DeMix paper's architecture.
PRESETS = {
    "125m": dict(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=12, intermediate_size=2048),
    "350m": dict(hidden_size=1024, num_layers=24, num_heads=16, num_kv_heads=8, intermediate_size=3072),
    "1.7b": dict(hidden_size=2048, num_layers=28, num_heads=16, num_kv_heads=8, intermediate_size=6144),
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

    import torch

    from demix.config import load_config
    from demix.train import build_model, model_shape
    from demix.train.hardware import autocast_dtype, matmul_rate, resolve_device
    from demix.train.step import forward_backward, make_optimizer

    sets = [*args.set, f"train.device={args.device}"]
    if args.preset:
        sets += [f"model.{k}={v}" for k, v in PRESETS[args.preset].items()]
        sets += ["model.max_position_embeddings=4096"]
    if args.seq_len:
        sets.append(f"train.seq_len={args.seq_len}")
    if args.micro_batch:
        sets.append(f"train.micro_batch_size={args.micro_batch}")
    cfg = load_config(args.config, sets)
    tc = cfg.train
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(tc)
    amp = autocast_dtype(tc, device)
    vocab = args.vocab or cfg.tokenizer.vocab_size
    model = build_model(cfg.model, vocab, seed=0).to(device)
    model.config.use_cache = False
    opt = make_optimizer(model, tc, tc.lr, device)
    step_model = torch.compile(model) if args.compile else model
    shape = model_shape(model)
    fpt = shape.flops_per_token(tc.seq_len)
    peak = matmul_rate(device, amp)
    tokens = tc.micro_batch_size * tc.seq_len
    gen = torch.Generator().manual_seed(0)
    times = []
    for i in range(args.warmup + args.steps):
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
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    tps = tokens / med
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(f"device            {name}, {amp or torch.float32}{', compiled' if args.compile else ''}")
    print(
        f"model             {cfg.model.family}, {shape.params / 1e6:.2f}M params "
        f"({shape.non_embedding / 1e6:.2f}M non-embedding), vocab {model.config.vocab_size}"
    )
    print(f"batch             {tc.micro_batch_size} x {tc.seq_len} = {tokens} tokens/step")
    print(f"FLOPs/token       {fpt / 1e6:.2f} M  (6N + 12·L·H·Q·T)")
    print(f"matmul rate       {peak / 1e12:.3f} TFLOP/s (measured)")
    print(f"step time         {med * 1e3:.1f} ms (median of {len(times)})")
    print(f"tokens/s          {tps:,.0f}")
    print(f"MFU               {tps * fpt / peak:.1%}")


if __name__ == "__main__":
    main()
