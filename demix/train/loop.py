"""The training loop shared by the base model, the components and reference models.

One optimizer step = ``world_size × grad_accum`` micro-batches ("slots") of ``micro_batch_size``
sequences. Slot ``s = rank·grad_accum + micro`` of step ``t`` is ``sampler.batch(t, B, rank=s)``, a
pure function of (seed, t, s): a resumed run sees the same data as an uninterrupted one, and one
process with ``grad_accum=2`` sees exactly the data two DDP processes with ``grad_accum=1`` see.

Read top to bottom: :func:`run_job` picks the device, :func:`_run` builds the model and resumes or
starts fresh, :func:`_train` runs the steps (:func:`_accumulate` → :func:`_guard` → optimizer step →
log, evaluate, checkpoint), :func:`_finish` writes the HF checkpoint and ``train_summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
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
from demix.train.hardware import autocast_dtype, matmul_rate
from demix.train.heldout import heldout_loss, loss_table
from demix.train.model import ModelShape, load_init, model_shape
from demix.train.resume import Progress, resume_or_start
from demix.train.schedule import lr_at, warmup_steps_for
from demix.train.step import forward_backward, make_optimizer
from demix.train.weighting import DomainWeighting, open_weighting
from demix.util.hashing import hash_file
from demix.util.io import write_json_atomic
from demix.util.provenance import provenance
from demix.util.torchenv import resolve_device

if TYPE_CHECKING:
    from typing import IO

    import torch

    from demix.data import Manifest, MixtureSampler
    from demix.train.doremi import DoReMiSettings

SPIKE_EMA = 0.9  # weight of the running loss the spike guard compares each step's loss against


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
    weighting: DoReMiSettings | None = None  # online domain weights (weighting.py); None: static


@dataclass
class _Training:
    """What the steps of one job work with; fixed before the first step."""

    cfg: ExperimentConfig
    run: RunDir
    manifest: Manifest
    job: TrainJob
    info: DistInfo
    device: torch.device
    amp: torch.dtype | None  # autocast dtype; None: fp32
    raw: Any  # the HF model: optimizer, clipping, evaluation and checkpoints see this one
    model: Any  # ``raw`` wrapped in DDP and/or torch.compile: forward/backward go through it
    optimizer: torch.optim.Optimizer
    sampler: MixtureSampler
    total_steps: int
    warmup: int  # warmup steps of the LR schedule
    tokens_per_step: int  # all ranks, all micro-batches
    shape: ModelShape
    flops_per_token: float
    peak_flops: float  # this device's matmul FLOP/s (rank 0's measurement, shared)
    weighting: DomainWeighting | None = None  # the domain-weight schedule; None: the static loss

    @property
    def peak_flops_all(self) -> float:
        return self.peak_flops * self.info.world_size


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
    device = resolve_device(tc.device, key="train.device", local_rank=info.local_rank)
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
    """Build the model and optimizer, resume or start fresh, train, write the results."""
    import torch

    from demix.data import MixtureSampler

    tc = cfg.train
    amp = autocast_dtype(tc, device)
    raw = load_init(job.init, cfg, manifest).to(device)
    raw.config.use_cache = False
    raw.train()
    optimizer = make_optimizer(raw, tc, job.peak_lr, device)
    tokens_per_step = info.world_size * tc.grad_accum * tc.micro_batch_size * tc.seq_len
    total_steps = max(1, math.ceil(job.tokens / tokens_per_step))

    # Loads weights, optimizer and RNG state when resuming; before DDP, which broadcasts rank 0's weights.
    pos = resume_or_start(job.out, info, raw, optimizer, job.inputs_hash, job.spec, fresh=fresh)
    model = raw
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if tc.compile:
        model = torch.compile(model)

    sampler = MixtureSampler(run, manifest, job.ratios, seq_len=tc.seq_len, seed=job.seed)
    shape = model_shape(raw)
    # Measured (or read from the cache) on rank 0 only, so every rank reports the same MFU.
    peak_flops = float(broadcast_object(matmul_rate(device, amp) if info.is_main else 0.0, info))  # type: ignore[arg-type]
    t = _Training(
        cfg, run, manifest, job, info, device, amp, raw, model, optimizer, sampler,
        total_steps=total_steps,
        warmup=warmup_steps_for(total_steps, tc.warmup_frac),
        tokens_per_step=tokens_per_step,
        shape=shape,
        flops_per_token=shape.flops_per_token(tc.seq_len),
        peak_flops=peak_flops,
    )  # fmt: skip
    t.weighting = open_weighting(
        job.weighting, manifest=manifest, ratios=job.ratios, sampler=sampler, proxy=raw, info=info,
        device=device, amp=amp, train=tc, out=job.out, saved=pos.schedule,
    )  # fmt: skip

    if pos.step == 0:
        _evaluate(t, 0, 0)  # the starting point of the eval log
    last_eval, tps_window = _train(t, pos, progress=progress)
    if last_eval is None:  # resumed at the very end: evaluate what we have
        last_eval = _evaluate(t, total_steps, pos.tokens)
    if info.is_main:
        _finish(t, pos.tokens, pos.elapsed, last_eval, tps_window)
    barrier(info)
    return job.out


def _train(t: _Training, pos: Progress, *, progress: bool) -> tuple[dict[str, Any] | None, list[float]]:
    """Steps ``pos.step + 1 .. total_steps``; ``pos`` advances with them (``elapsed`` at the end).

    Returns:
        The last evaluation row (None when no step was left) and each step's tokens/s.
    """
    from demix.util.progress import bar as progress_bar

    tc, info = t.cfg.train, t.info
    bar = progress_bar(
        total=t.total_steps,
        initial=pos.step,
        desc=f"train {t.job.name}",
        unit="step",
        disable=not (progress and tc.progress and info.is_main),
        dynamic_ncols=True,
    )
    log = open(t.job.out / "train_log.jsonl", "a") if info.is_main else None  # noqa: SIM115 - closed in finally
    t_start = time.perf_counter()
    elapsed_before = pos.elapsed
    last_eval: dict[str, Any] | None = None
    tps_window: list[float] = []
    try:
        for step in range(pos.step, t.total_steps):
            t0 = time.perf_counter()
            lr = lr_at(step, t.total_steps, t.job.peak_lr, warmup_steps=t.warmup, min_ratio=tc.min_lr_ratio)
            for g in t.optimizer.param_groups:
                g["lr"] = lr
            loss, grad_norm = _accumulate(t, step)
            _guard(t, loss, pos.loss_ema, step)
            t.optimizer.step()
            t.optimizer.zero_grad(set_to_none=True)
            pos.step = step + 1
            pos.tokens += t.tokens_per_step
            pos.loss_ema = loss if pos.loss_ema is None else SPIKE_EMA * pos.loss_ema + (1 - SPIKE_EMA) * loss
            tps = t.tokens_per_step / (time.perf_counter() - t0)
            tps_window.append(tps)
            _log_step(t, pos, log, bar, lr=lr, loss=loss, grad_norm=grad_norm, tps=tps)
            if pos.step % tc.eval_every == 0 or pos.step == t.total_steps:
                last_eval = _evaluate(t, pos.step, pos.tokens)
            if pos.step % tc.checkpoint_every == 0 and pos.step < t.total_steps:
                if log is not None:
                    log.flush()  # the log on disk covers every step the checkpoint holds
                _checkpoint(t, pos, elapsed_before + time.perf_counter() - t_start)
    finally:
        bar.close()
        if log is not None:
            log.close()
    pos.elapsed = elapsed_before + time.perf_counter() - t_start
    return last_eval, tps_window


def _accumulate(t: _Training, step: int) -> tuple[float, float]:
    """Forward and backward over this rank's ``grad_accum`` micro-batches of ``step``, then clip.

    Returns:
        The step's mean loss over all ranks and the gradient norm before clipping.
    """
    import torch

    tc, info = t.cfg.train, t.info
    loss_sum = torch.zeros((), device=t.device)
    for micro in range(tc.grad_accum):
        # (B, T+1) token ids, built on the host from the memory-mapped shards, copied to the device here.
        slot = info.rank * tc.grad_accum + micro
        x = t.sampler.batch(step, tc.micro_batch_size, rank=slot).to(t.device, non_blocking=True)
        # DDP all-reduces gradients in the backward of the last micro-batch only.
        last = not info.enabled or micro == tc.grad_accum - 1
        with t.model.no_sync() if not last else contextlib.nullcontext():
            if t.weighting is None:
                loss_sum += forward_backward(t.model, x, t.amp, tc.grad_accum)
            else:  # DoReMi: the step's weighted loss (weighting.py)
                loss_sum += t.weighting.forward_backward(t.model, x, step, slot)
    if t.weighting is not None:
        t.weighting.end_step(step)  # the excess losses summed over ranks, the weights updated
    grad_norm = torch.nn.utils.clip_grad_norm_(t.raw.parameters(), tc.grad_clip)  # () over all params
    # Deliberate syncs, once a step: the spike guard must see this step's loss on the host before the
    # optimizer applies its gradients, and the same loss (the mean over ranks) on every rank, so that
    # all ranks stop together instead of one waiting forever in the next collective. The per-step log
    # row reads both numbers; the grad norm is ready by then, so reading it costs no further wait.
    loss_t = all_reduce_sum(loss_sum / tc.grad_accum, info) / info.world_size  # ()
    return float(loss_t.item()), float(grad_norm)


def _guard(t: _Training, loss: float, loss_ema: float | None, step: int) -> None:
    """Stop on a loss that is not finite or jumps above ``spike_factor ×`` the running mean.

    Raises:
        DemixError: naming the step, the loss and the checkpoint that is kept.
    """
    tc = t.cfg.train
    if math.isfinite(loss) and (loss_ema is None or loss <= tc.spike_factor * loss_ema):
        return
    last = ckpt_io.checkpoint_dir(t.job.out)
    kept = f"the last good checkpoint is kept at {last}" if last else "no checkpoint was written yet"
    why = "not finite" if not math.isfinite(loss) else f"> {tc.spike_factor}× running mean {loss_ema:.4g}"
    raise DemixError(
        f"training {t.job.name}: loss {loss:.4g} at step {step + 1} ({why}); "
        f"lower train.lr or raise train.grad_clip/spike_factor; {kept}"
    )


def _log_step(
    t: _Training,
    pos: Progress,
    log: IO[str] | None,
    bar: Any,
    *,
    lr: float,
    loss: float,
    grad_norm: float,
    tps: float,
) -> None:
    """One row of ``train_log.jsonl`` (rank 0, flushed every ``log_every`` steps) and the progress bar."""
    tc = t.cfg.train
    mfu = tps * t.flops_per_token / t.peak_flops_all
    if log is not None:
        row = {
            "step": pos.step,
            "tokens": pos.tokens,
            "loss": round(loss, 6),
            "lr": lr,
            "grad_norm": round(grad_norm, 6),
            "tokens_per_s": round(tps, 1),
            "mfu": round(mfu, 5),
        }
        log.write(json.dumps(row) + "\n")
        if pos.step % tc.log_every == 0:
            log.flush()
    bar.update(1)
    if pos.step % tc.log_every == 0:
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}", mfu=f"{mfu:.1%}")


def _evaluate(t: _Training, step: int, tokens: int) -> dict[str, Any]:
    """Held-out loss per domain (all ranks take part); rank 0 appends it to ``eval_log.jsonl``."""
    tc = t.cfg.train
    losses = heldout_loss(
        t.raw,
        t.run,
        t.manifest,
        seq_len=tc.seq_len,
        max_tokens=tc.eval_tokens,
        batch_size=tc.micro_batch_size,
        autocast_dtype=t.amp,
        dist=t.info,
    )
    row = {"step": step, "tokens": tokens, **loss_table(losses)}
    if t.info.is_main:
        with open(t.job.out / "eval_log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


def _checkpoint(t: _Training, pos: Progress, elapsed: float) -> None:
    """Rank 0 writes the resumable checkpoint; every rank waits for it."""
    if t.info.is_main:
        job = t.job
        state = ckpt_io.ResumeState(pos.step, pos.tokens, pos.loss_ema, elapsed, job.inputs_hash, job.spec)
        state.schedule = t.weighting.state.to_dict() if t.weighting is not None else None
        ckpt_io.save_resumable(job.out, t.raw, t.optimizer, state)
    barrier(t.info)


def _finish(
    t: _Training, tokens: int, elapsed: float, last_eval: dict[str, Any], tps_window: list[float]
) -> None:
    """Rank 0: the HF checkpoint, then ``train_summary.json`` (which marks the job done)."""
    import torch

    tc, job = t.cfg.train, t.job
    save_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
        tc.save_dtype, t.amp or torch.float32
    )
    ckpt_io.save_final(job.out, t.raw, t.run.tokenizer, save_dtype)
    steady = tps_window[len(tps_window) // 5 :] or tps_window  # the first fifth warms up
    tps_mean = float(np.median(steady)) if steady else 0.0
    summary = {
        "kind": job.kind,
        "name": job.name,
        "mixture": {n: float(r) for n, r in zip(t.manifest.names, job.ratios, strict=True)},
        "tokens": tokens,
        "steps": t.total_steps,
        "peak_lr": job.peak_lr,
        "global_batch_sequences": t.info.world_size * tc.grad_accum * tc.micro_batch_size,
        "seq_len": tc.seq_len,
        "world_size": t.info.world_size,
        "device": str(t.device),
        "dtype": str(t.amp or torch.float32),
        "params": t.shape.params,
        "non_embedding_params": t.shape.non_embedding,
        "flops_per_token": t.flops_per_token,
        "matmul_flops_per_s": t.peak_flops,
        "tokens_per_s": round(tps_mean, 1),
        "mfu": round(tps_mean * t.flops_per_token / t.peak_flops_all, 5),
        "train_seconds": round(elapsed, 2),
        "final_eval": last_eval,
        "init": str(job.init) if job.init else None,
        "inputs_hash": job.inputs_hash,
        "spec": job.spec,
        "weights_sha256": hash_file(job.out / "model.safetensors"),
        "provenance": provenance({"inputs": job.inputs_hash}),
        **({"domain_weights": t.weighting.summary()} if t.weighting is not None else {}),
    }
    write_json_atomic(job.out / "train_summary.json", summary)
    if not tc.keep_checkpoint:
        ckpt_io.remove_resumable(job.out)
