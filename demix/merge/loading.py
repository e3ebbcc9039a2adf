"""Placing the stacked buffer: where it fits (device, or pinned host memory streamed per merge), and
copying each checkpoint into its row once, straight from the memory-mapped safetensors files."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from demix.errors import DemixError
from demix.merge.checkpoint import Checkpoint, read_tensors
from demix.merge.layout import Layout

if TYPE_CHECKING:
    import torch


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def plan_memory(
    layout: Layout, rows: int, dtype: torch.dtype, dev: torch.device, stream: bool | None
) -> bool:
    """Whether the stack must live in host memory (streamed); raise when it fits nowhere."""
    import torch

    elem = torch.empty((), dtype=dtype).element_size()
    stack_bytes = rows * layout.padded * elem
    out_bytes = layout.padded * elem
    host_free = _host_available()
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        need = stack_bytes + out_bytes + (1 << 30)  # 1 GiB left for activations of the evaluation
        if stream is None:
            stream = need > free
        if not stream and need > free:
            raise DemixError(
                f"stacked components need {_fmt_bytes(stack_bytes)} ({rows} x {layout.numel:,} params) + "
                f"{_fmt_bytes(out_bytes)} for the model, but {dev} has {_fmt_bytes(free)} free; "
                "set merge.host_memory_fallback=true to stream from host memory"
            )
    else:
        stream = bool(stream)  # streaming host -> host only exercises the path (tests)
    if (stream or dev.type == "cpu") and host_free is not None and stack_bytes > host_free:
        raise DemixError(
            f"stacked components need {_fmt_bytes(stack_bytes)} of host memory ({rows} x "
            f"{layout.numel:,} params), but only {_fmt_bytes(host_free)} is available"
        )
    return bool(stream)


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _converted_tensors(ckpt: Checkpoint, names: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's tensors of a checkpoint whose layout transformers converts on load (fused
    tensors): loaded by ``from_pretrained`` itself, in the stored dtype."""
    from transformers import AutoModelForCausalLM

    from demix.util.torchenv import quiet_transformers

    try:
        with quiet_transformers(errors_only=True):
            model = AutoModelForCausalLM.from_pretrained(str(ckpt.root), dtype="auto")
    except (OSError, ValueError, RuntimeError) as e:
        raise DemixError(f"transformers cannot load the checkpoint: {e}", path=ckpt.root) from None
    sd = model.state_dict()
    for n in names:
        if n not in sd:
            raise DemixError(f"model parameter {n!r} is not in the loaded checkpoint", path=ckpt.root)
        yield n, sd[n]


def load_row(
    stack: torch.Tensor, row: int, ckpt: Checkpoint, layout: Layout, sources: dict[str, str] | None
) -> None:
    """Copy one checkpoint's tensors into row ``row`` of the stack: whole blocks in one copy each
    tensor, partial blocks at its ends.

    ``sources`` maps each layout name to its stored tensor (:func:`demix.merge.names.plan_names`);
    ``None`` loads the checkpoint through transformers (a layout it converts on load).
    """
    view = stack[:, row, :]  # (n_blocks, block), strided
    block = layout.block
    slots = {s.name: s for s in layout.slots}
    if sources is None:
        tensors = _converted_tensors(ckpt, list(slots))
    else:
        stored = {sources[n]: n for n in slots}
        tensors = ((stored[s], t) for s, t in read_tensors(ckpt, list(stored)))
    for name, t in tensors:
        slot = slots[name]
        src = t.reshape(-1)
        pos, end = slot.offset, slot.offset + slot.numel
        while pos < end:
            b, start = divmod(pos, block)
            if start == 0 and end - pos >= block:
                nb = (end - pos) // block
                view[b : b + nb].copy_(
                    src[pos - slot.offset : pos - slot.offset + nb * block].view(nb, block)
                )
                pos += nb * block
            else:
                stop = min(block, start + end - pos)
                view[b, start:stop].copy_(src[pos - slot.offset : pos - slot.offset + stop - start])
                pos += stop - start
