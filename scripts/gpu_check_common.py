"""What every part of scripts/gpu_check.py shares: targets, sizes, the result format, helpers.

A part is a function ``Ctx -> {"figures": ..., "info": ...}``. A figure carries its target where it
has one: ``kind="check"`` marks a correctness condition that must hold in every mode, ``kind="target"``
a speed or size goal of a GPU (recorded under --smoke too, where it means nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "gpu-check.yaml"
sys.path[:0] = [str(REPO), str(REPO / "scripts")]  # demix need not be installed (a device machine)

TARGETS = {
    "merge_frac_of_floor": 0.8,  # DESIGN.md: a fused merge at >= 0.8 of the copy-bandwidth floor
    "mfu": 0.40,  # of the device's measured bf16 matmul rate
    "live_vs_stock_max_abs_diff": 1e-4,
    "merge_max_ulp": 0.51,  # vs the fp64 sum: fp32 accumulation, one round to nearest (<= 0.5 + tiny)
    "min_params": 100e6,
}
SMOKE_TARGETS = {"merge_max_ulp": 1.01}  # Triton's CPU interpreter truncates to bf16 (< 1 ulp + tiny)
# The sizes each part runs at, per mode.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "gpu": {
        "merge": dict(components=7, params="1.7B", dtype="bfloat16", repeats=20, bandwidth_bytes=1 << 30),
        "stream": dict(repeats=3, stream_bytes=None, bandwidth_bytes=1 << 30),
        "train": dict(steps=10, warmup=3, backend="inductor"),
        "search": dict(n_trials=8),
    },
    "smoke": {
        "merge": dict(components=3, params="150K", dtype="bfloat16", repeats=2, bandwidth_bytes=1 << 24),
        "stream": dict(repeats=2, stream_bytes=1 << 20, bandwidth_bytes=1 << 24),
        "train": dict(steps=2, warmup=1, backend="aot_eager"),
        "search": dict(n_trials=4),
    },
}
# --smoke: configs/gpu-check.yaml at CPU size (the pipeline's code paths, seconds per stage).
SMOKE_SETS = [
    "train.device=cpu", "merge.device=cpu", "evaluate.device=cpu", "train.dtype=auto", "merge.dtype=float32",
    "corpora.builtin_bytes=300K", "tokenizer.vocab_size=512", "tokenizer.sample_bytes=100K",
    "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.num_kv_heads=1",
    "model.head_dim=16", "model.intermediate_size=64", "model.max_position_embeddings=128",
    "train.seq_len=64", "train.micro_batch_size=8", "train.threads=1", "train.base_tokens=16K",
    "train.component_tokens=8K", "train.eval_every=20", "train.eval_tokens=2K",
    "evaluate.builtin.bpb_docs=4", "evaluate.builtin.bpb_max_chars=300", "evaluate.builtin.accuracy_docs=12",
    "evaluate.builtin.context_chars=200", "search.n_trials=2", "export.target_tokens=200K",
    "export.bootstrap=5",
]  # fmt: skip
# ---- results ----------------------------------------------------------------------------------------


def figure(value: Any, target: float | None = None, *, at_most: bool = False, kind: str = "target") -> dict:
    """One number (floats kept to 4 significant digits) and, when it has one, its target and whether
    the unrounded value met it.

    ``kind``: ``target`` (a speed or size goal: recorded, meaningful on the GPU), ``check`` (a
    correctness condition that must hold in every mode) or ``info``.
    """
    shown = float(f"{value:.4g}") if isinstance(value, float) else value
    out: dict[str, Any] = {"value": shown, "kind": kind if target is not None else "info"}
    if target is not None:
        out["target"] = f"{'<=' if at_most else '>='} {target:g}"
        out["met"] = bool(value <= target if at_most else value >= target)
    return out


@dataclass
class Ctx:
    """What every part gets: the mode, its sizes, the shared work directory, config overrides."""

    smoke: bool
    workdir: str
    result: str = ""  # where the part writes its result JSON

    @property
    def mode(self) -> str:
        return "smoke" if self.smoke else "gpu"

    @property
    def device(self) -> str:
        return "cpu" if self.smoke else "cuda"

    @property
    def sets(self) -> list[str]:
        return SMOKE_SETS if self.smoke else []

    @property
    def work(self) -> Path:
        return Path(self.workdir)

    def size(self, part: str) -> dict[str, Any]:
        return SIZES[self.mode][part]

    @property
    def targets(self) -> dict[str, float]:
        return {**TARGETS, **SMOKE_TARGETS} if self.smoke else TARGETS


class PartError(Exception):
    """A part could not measure what it is for (the message says why)."""


@dataclass(frozen=True)
class Part:
    name: str
    limit_s: float  # on one H100/H200
    smoke_limit_s: float  # on 2 CPU cores
    run: Callable[[Ctx], dict[str, Any]]
    smoke_env: dict[str, str] = field(default_factory=dict)
    gpu_only: str | None = None  # why it cannot run on CPU, if it cannot: smoke mode skips it, saying so


TRITON_CPU = {"TRITON_INTERPRET": "1"}  # --smoke: Triton kernels run by its CPU interpreter


# ---- helpers shared by parts ------------------------------------------------------------------------


def demix_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: the repo importable, offline, unbuffered, no progress bars."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TQDM_DISABLE"):
        env.setdefault(key, "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def demix_cli(ctx: Ctx, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m demix ARGS --set ...`` (the CLI as a user runs it); raises when it fails."""
    sets = [x for s in ctx.sets for x in ("--set", s)]
    cmd = [sys.executable, "-m", "demix", *args, *sets]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=demix_env(), cwd=REPO)
    print(proc.stdout[-4000:], proc.stderr[-8000:], sep="\n", flush=True)
    if proc.returncode != 0:
        raise PartError(f"demix {args[0]} exited {proc.returncode}: {tail(proc.stderr, 1500)}")
    return proc


def tail(text: str, n: int) -> str:
    return text if len(text) <= n else "..." + text[-n:]


def merge_weights(k: int) -> list[float]:
    """A fixed, non-uniform mixture: 1, 2, ..., k normalised."""
    return [(i + 1) / (k * (k + 1) / 2) for i in range(k)]
