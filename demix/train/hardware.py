"""Training precision and the device's measured matmul rate (the denominator of MFU).

MFU is reported against what this device actually reaches on a large matmul in the training dtype,
not a datasheet number: the figure is honest on CPUs, MIG slices and throttled GPUs alike. The rate is
measured once and cached in ``~/.cache/demix/matmul_rate.json`` (``DEMIX_PEAK_FLOPS`` overrides it).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from demix.config import TrainConfig
from demix.errors import ConfigError
from demix.util.io import write_json_atomic
from demix.util.torchenv import resolve_dtype

if TYPE_CHECKING:
    import torch


def autocast_dtype(train: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 on GPU unless ``train.dtype=float32``; none (fp32) on CPU by default."""
    import torch

    dtype = resolve_dtype(train.dtype, device, key="train.dtype")
    return None if dtype == torch.float32 else dtype


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` when a low-precision dtype is asked for; a no-op in fp32."""
    import torch

    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


WINDOWS = 5  # timing windows of a matmul-rate measurement; the fastest counts


def _cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "demix" / "matmul_rate.json"


def _device_key(device: torch.device, dtype: torch.dtype | None) -> str:
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu-{os.cpu_count()}cores-{torch.get_num_threads()}threads"
    return f"{name}|{dtype or torch.float32}|torch-{torch.__version__}|best-of-{WINDOWS}"


def measure_matmul_rate(
    device: torch.device, dtype: torch.dtype | None, *, size: int | None = None, seconds: float = 1.0
) -> float:
    """FLOP/s of a square matmul of ``size`` on ``device`` in ``dtype`` (timed, after a warmup).

    The best of several short windows: on a shared machine one window can be slowed by other
    processes, and a rate measured low would be cached and overstate MFU (above 100%) forever.
    """
    import torch

    dt = dtype or torch.float32
    n = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):
        a @ b
    sync()
    best = 0.0
    for _ in range(WINDOWS):
        reps, elapsed = 0, 0.0
        t0 = time.perf_counter()
        while elapsed < seconds / WINDOWS or reps < 3:
            a @ b
            reps += 1
            if reps % 4 == 0 or device.type != "cuda":
                sync()
                elapsed = time.perf_counter() - t0
        sync()
        best = max(best, 2.0 * n**3 * reps / (time.perf_counter() - t0))
    return best


def matmul_rate(device: torch.device, dtype: torch.dtype | None) -> float:
    """The device's matmul FLOP/s in ``dtype``: ``DEMIX_PEAK_FLOPS``, else cached, else measured once."""
    env = os.environ.get("DEMIX_PEAK_FLOPS")
    if env:
        try:
            return float(env)
        except ValueError:
            raise ConfigError(f"DEMIX_PEAK_FLOPS={env!r} is not a number") from None
    key = _device_key(device, dtype)
    path = _cache_file()
    cache: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError):
        cache = json.loads(path.read_text())
    if isinstance(cache, dict) and isinstance(cache.get(key), int | float):
        return float(cache[key])
    rate = measure_matmul_rate(device, dtype)
    cache = cache if isinstance(cache, dict) else {}
    cache[key] = rate
    with contextlib.suppress(OSError):
        write_json_atomic(path, cache)
    return rate
