"""The training loop shared by the base model, the components and reference models.

One optimizer step = ``world_size × grad_accum`` micro-batches ("slots") of ``micro_batch_size``
sequences. Slot ``s = rank·grad_accum + micro`` of step ``t`` is ``sampler.batch(t, B, rank=s)``, a
pure function of (seed, t, s): a resumed run sees the same data as an uninterrupted one, and one
process with ``grad_accum=2`` sees exactly the data two DDP processes with ``grad_accum=1`` see.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.config import ExperimentConfig
from demix.errors import DemixError
from demix.run import RunDir
from demix.train import checkpoint as ckpt_io
from demix.train.dist import DistInfo, all_reduce_sum, barrier, broadcast_object, dist_info, init_distributed
from demix.train.hardware import autocast_dtype, matmul_rate, resolve_device
from demix.train.heldout import heldout_loss, loss_table
from demix.train.model import build_model, model_shape
from demix.train.schedule import lr_at, warmup_steps_for
from demix.train.step import forward_backward, make_optimizer
from demix.util.hashing import hash_file
from demix.util.io import write_json_atomic
from demix.util.provenance import provenance

if TYPE_CHECKING:
    import torch

    from demix.data import Manifest

SPIKE_EMA = 0.9


@dataclass
class TrainJob:
    """One training run: where it starts, what it trains on, for how long, and where it writes."""

    kind: str  # base | component | reference
    name: str
    out: Path
    ratios: np.ndarray  # data mixture in manifest order
    tokens: int  # token budget
    peak_lr: float
    seed: int  # data-order seed
    init: Path | None = None  # HF checkpoint to continue from (None: fresh init)
    spec: dict[str, Any] = field(default_factory=dict)  # everything the result depends on
    inputs_hash: str = ""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything after it is redone anyway
    return rows


def _truncate_log(path: Path, step: int) -> None:
    rows = [r for r in _read_jsonl(path) if r.get("step", 0) <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _load_init(job: TrainJob, cfg: ExperimentConfig, manifest: Manifest) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    if job.init is None:
        return build_model(cfg.model, manifest, seed=cfg.train.seed)
    try:
        with ckpt_io.quiet_transformers():
            return AutoModelForCausalLM.from_pretrained(
                job.init, dtype=torch.float32, attn_implementation="sdpa"
            )
    except (OSError, ValueError) as e:
        raise DemixError(f"cannot load the initial checkpoint: {e}", path=job.init) from None


def run_job(
    cfg: ExperimentConfig,
    run: RunDir,
    manifest: Manifest,
    job: TrainJob,
    *,
    progress: bool = True,
    fresh: bool = False,
) -> Path:
    """Train ``job`` to its token budget, resuming from ``job.out/checkpoint`` when there is one.

    Raises:
        DemixError: a NaN or exploding loss (the last good checkpoint is kept), or a checkpoint that
            does not match the job or cannot be read.
    """
    import torch

    tc = cfg.train
    info = dist_info()
    device = resolve_device(tc, info.local_rank)
    init_distributed(info, device)
    threads_before = torch.get_num_threads()
    if tc.threads:
        torch.set_num_threads(tc.threads)
    try:
        return _run(cfg, run, manifest, job, info, device, progress=progress, fresh=fresh)
    finally:
        torch.set_num_threads(threads_before)


def _run(
    cfg: ExperimentConfig,
    run: RunDir,
    manifest: Manifest,
    job: TrainJob,
    info: DistInfo,
    device: torch.device,
    *,
    progress: bool,
    fresh: bool,
) -> Path:
    import torch
    from tqdm.auto import tqdm

    from demix.data import MixtureSampler

    tc = cfg.train
    amp = autocast_dtype(tc, device)
    out = job.out

    model = _load_init(job, cfg, manifest).to(device)
    model.config.use_cache = False
    model.train()
    raw = model
    optimizer = make_optimizer(raw, tc, job.peak_lr, device)
    slots = info.world_size * tc.grad_accum
    tokens_per_step = slots * tc.micro_batch_size * tc.seq_len
    total_steps = max(1, math.ceil(job.tokens / tokens_per_step))
    warmup = warmup_steps_for(total_steps, tc.warmup_frac)

    # ---- resume or start fresh ------------------------------------------------------------------
    ckpt = ckpt_io.checkpoint_dir(out)
    if fresh and ckpt is not None:
        barrier(info)
        if info.is_main:
            ckpt_io.remove_resumable(out)
        barrier(info)
        ckpt = None
    start_step, tokens_seen, loss_ema, elapsed_before = 0, 0, None, 0.0
    if ckpt is not None:
        state = ckpt_io.read_state(ckpt)
        ckpt_io.check_compatible(ckpt, state, job.inputs_hash, job.spec)
        ckpt_io.load_resumable(ckpt, raw, optimizer)
        start_step, tokens_seen, loss_ema, elapsed_before = (
            state.step,
            state.tokens,
            state.loss_ema,
            state.elapsed,
        )
        barrier(info)
        if info.is_main:
            for log in ("train_log.jsonl", "eval_log.jsonl"):
                _truncate_log(out / log, start_step)
    else:
        barrier(info)
        if info.is_main:
            if out.exists():
                shutil.rmtree(out)  # stale results of other settings: never mix them with this run
            out.mkdir(parents=True)
        barrier(info)

    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if tc.compile:
        model = torch.compile(model)

    sampler = MixtureSampler(run, manifest, job.ratios, seq_len=tc.seq_len, seed=job.seed)
    shape = model_shape(raw)
    flops_per_token = shape.flops_per_token(tc.seq_len)
    peak_flops = float(broadcast_object(matmul_rate(device, amp) if info.is_main else 0.0, info))  # type: ignore[arg-type]
    peak_flops_all = peak_flops * info.world_size

    def evaluate(step: int) -> dict[str, Any]:
        losses = heldout_loss(
            raw,
            run,
            manifest,
            seq_len=tc.seq_len,
            max_tokens=tc.eval_tokens,
            batch_size=tc.micro_batch_size,
            autocast_dtype=amp,
            dist=info,
        )
        row = {"step": step, "tokens": tokens_seen, **loss_table(losses)}
        if info.is_main:
            with open(out / "eval_log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        return row

    last_eval = evaluate(0) if start_step == 0 else None
    bar = tqdm(
        total=total_steps,
        initial=start_step,
        desc=f"train {job.name}",
        unit="step",
        disable=not (progress and tc.progress and info.is_main),
        dynamic_ncols=True,
    )
    train_log = open(out / "train_log.jsonl", "a") if info.is_main else None  # noqa: SIM115 - closed in finally
    t_start = time.perf_counter()
    tps_window: list[float] = []
    try:
        for step in range(start_step, total_steps):
            t0 = time.perf_counter()
            lr = lr_at(step, total_steps, job.peak_lr, warmup_steps=warmup, min_ratio=tc.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for micro in range(tc.grad_accum):
                x = sampler.batch(step, tc.micro_batch_size, rank=info.rank * tc.grad_accum + micro)
                sync = not info.enabled or micro == tc.grad_accum - 1
                with model.no_sync() if not sync else contextlib.nullcontext():
                    loss_sum += forward_backward(model, x.to(device, non_blocking=True), amp, tc.grad_accum)
            grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), tc.grad_clip)
            loss_t = all_reduce_sum(loss_sum / tc.grad_accum, info) / info.world_size
            loss_val = float(loss_t.item())
            if not math.isfinite(loss_val) or (
                loss_ema is not None and loss_val > tc.spike_factor * loss_ema
            ):
                last = ckpt_io.checkpoint_dir(out)
                kept = (
                    f"the last good checkpoint is kept at {last}" if last else "no checkpoint was written yet"
                )
                raise DemixError(
                    f"training {job.name}: loss {loss_val:.4g} at step {step + 1} "
                    f"({'not finite' if not math.isfinite(loss_val) else f'> {tc.spike_factor}× running mean {loss_ema:.4g}'}); "
                    f"lower train.lr or raise train.grad_clip/spike_factor; {kept}"
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_ema = loss_val if loss_ema is None else SPIKE_EMA * loss_ema + (1 - SPIKE_EMA) * loss_val
            tokens_seen += tokens_per_step
            dt = time.perf_counter() - t0
            tps = tokens_per_step / dt
            tps_window.append(tps)
            mfu = tps * flops_per_token / peak_flops_all
            if train_log is not None:
                train_log.write(
                    json.dumps(
                        {
                            "step": step + 1,
                            "tokens": tokens_seen,
                            "loss": round(loss_val, 6),
                            "lr": lr,
                            "grad_norm": round(float(grad_norm), 6),
                            "tokens_per_s": round(tps, 1),
                            "mfu": round(mfu, 5),
                        }
                    )
                    + "\n"
                )
                if (step + 1) % tc.log_every == 0:
                    train_log.flush()
            bar.update(1)
            if (step + 1) % tc.log_every == 0:
                bar.set_postfix(loss=f"{loss_val:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}", mfu=f"{mfu:.1%}")
            if (step + 1) % tc.eval_every == 0 or step + 1 == total_steps:
                last_eval = evaluate(step + 1)
            if (step + 1) % tc.checkpoint_every == 0 and step + 1 < total_steps:
                if train_log is not None:
                    train_log.flush()
                if info.is_main:
                    elapsed = elapsed_before + time.perf_counter() - t_start
                    ckpt_io.save_resumable(
                        out,
                        raw,
                        optimizer,
                        ckpt_io.ResumeState(
                            step + 1, tokens_seen, loss_ema, elapsed, job.inputs_hash, job.spec
                        ),
                    )
                barrier(info)
    finally:
        bar.close()
        if train_log is not None:
            train_log.close()

    elapsed = elapsed_before + time.perf_counter() - t_start
    if last_eval is None:  # resumed at the very end: evaluate what we have
        last_eval = evaluate(total_steps)
    if info.is_main:
        save_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
            tc.save_dtype, amp or torch.float32
        )
        ckpt_io.save_final(out, raw, run.tokenizer, save_dtype)
        steady = tps_window[len(tps_window) // 5 :] or tps_window
        tps_mean = float(np.median(steady)) if steady else 0.0
        summary = {
            "kind": job.kind,
            "name": job.name,
            "mixture": {n: float(r) for n, r in zip(manifest.names, job.ratios, strict=True)},
            "tokens": tokens_seen,
            "steps": total_steps,
            "peak_lr": job.peak_lr,
            "global_batch_sequences": slots * tc.micro_batch_size,
            "seq_len": tc.seq_len,
            "world_size": info.world_size,
            "device": str(device),
            "dtype": str(amp or torch.float32),
            "params": shape.params,
            "non_embedding_params": shape.non_embedding,
            "flops_per_token": flops_per_token,
            "matmul_flops_per_s": peak_flops,
            "tokens_per_s": round(tps_mean, 1),
            "mfu": round(tps_mean * flops_per_token / peak_flops_all, 5),
            "train_seconds": round(elapsed, 2),
            "final_eval": last_eval,
            "init": str(job.init) if job.init else None,
            "inputs_hash": job.inputs_hash,
            "spec": job.spec,
            "weights_sha256": hash_file(out / "model.safetensors"),
            "provenance": provenance({"inputs": job.inputs_hash}),
        }
        write_json_atomic(out / "train_summary.json", summary)
        if not tc.keep_checkpoint:
            ckpt_io.remove_resumable(out)
    barrier(info)
    return out
