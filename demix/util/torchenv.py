"""The one device/dtype resolver of train, evaluate and merge, and transformers kept quiet.

The spellings are the ones the config allows (``auto``, ``cpu``, ``cuda``; ``auto``, ``bfloat16``,
``float16``, ``float32``); ``auto`` means CUDA when it is visible, and bfloat16 there, float32 on CPU.
torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from demix.errors import ConfigError

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "bfloat16", "float16", "float32")


def resolve_device(want: str, *, key: str, local_rank: int | None = None) -> torch.device:
    """The torch device for a ``device`` setting.

    Args:
        want: ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``, from library callers).
        key: the setting's name, for the message (``train.device``).
        local_rank: under DDP, the process's GPU (modulo the visible ones); None: ``cuda`` as given.

    Raises:
        ConfigError: CUDA is asked for but none is visible.
    """
    import torch

    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(want)
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise ConfigError(f"{key}={want} but no CUDA device is visible")
    if local_rank is not None:
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def resolve_dtype(want: str | torch.dtype, device: torch.device, *, key: str) -> torch.dtype:
    """The torch dtype for a ``dtype`` setting: ``auto`` is bfloat16 on CUDA, float32 elsewhere.

    Raises:
        ConfigError: ``want`` is not one of :data:`DTYPES` (nor a ``torch.dtype``).
    """
    import torch

    if isinstance(want, torch.dtype):
        return want
    if want == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if want not in DTYPES:
        raise ConfigError(f"{key} {want!r} is not one of {', '.join(DTYPES)}")
    dtype: torch.dtype = getattr(torch, want)
    return dtype


@contextlib.contextmanager
def quiet_transformers(*, errors_only: bool = False) -> Iterator[None]:
    """Hide transformers' per-file progress bars ("Loading weights", "Writing model shards").

    Args:
        errors_only: also lower transformers' logging to errors for the duration (loading the run's
            own tokenizer, whose warnings say nothing to the user).
    """
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    if errors_only:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        if errors_only:
            hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
