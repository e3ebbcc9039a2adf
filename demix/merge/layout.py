"""The flat layout of a model's tensors, and the live HF model whose parameters are views into it.

Every merged tensor lives at a fixed offset of one flat buffer of P elements (padded to whole
blocks). The stacked component buffer has shape ``(n_blocks, K, block)``: one block of every
component is contiguous, so the kernel reads K contiguous runs and writes one (see ``kernels.py``).
The live model is built once from config.json with parameters on the meta device, then each
parameter is re-pointed at its view of the flat output buffer; a merge writes that buffer in place,
so the model (and any lm-eval wrapper around it) sees the new weights with no copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from demix.errors import DemixError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class Slot:
    """One tensor in the flat buffer: elements ``[offset, offset + numel)``."""

    name: str
    shape: tuple[int, ...]
    offset: int
    numel: int


@dataclass(frozen=True)
class Layout:
    """Where each tensor lives in the flat buffer, and how the buffer is cut into blocks."""

    slots: tuple[Slot, ...]
    numel: int  # P: real elements
    block: int  # elements per block (the unit of work of the kernel and of host streaming)

    @property
    def n_blocks(self) -> int:
        return max(1, -(-self.numel // self.block))

    @property
    def padded(self) -> int:
        return self.n_blocks * self.block

    @classmethod
    def build(cls, shapes: dict[str, tuple[int, ...]], block: int) -> Layout:
        slots, offset = [], 0
        for name, shape in shapes.items():
            n = 1
            for s in shape:
                n *= s
            slots.append(Slot(name, shape, offset, n))
            offset += n
        return cls(tuple(slots), offset, block)

    def pieces(self, slot: Slot) -> Iterator[tuple[int, int, int, int]]:
        """``(block, start, stop, dst)``: the block-local ranges a tensor spans, and where each piece
        goes in the tensor's flat elements."""
        pos = slot.offset
        end = slot.offset + slot.numel
        while pos < end:
            b, start = divmod(pos, self.block)
            stop = min(self.block, start + end - pos)
            yield b, start, stop, pos - slot.offset
            pos += stop - start


def views(flat: torch.Tensor, layout: Layout) -> dict[str, torch.Tensor]:
    """Each tensor as a view into the flat (padded) buffer."""
    return {s.name: flat[s.offset : s.offset + s.numel].view(s.shape) for s in layout.slots}


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Create parameters on the meta device (no memory, no init) but buffers for real.

    Buffers such as rotary ``inv_freq`` are computed in ``__init__`` and are not in checkpoints, so
    they must exist for real; parameters are re-pointed at the flat buffer afterwards anyway.
    """
    import torch

    original = torch.nn.Module.register_parameter

    def register(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta":  # tying re-registers a meta one
            p = module._parameters[name]
            assert p is not None
            module._parameters[name] = torch.nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def meta_model(config_dir: Path, dtype: torch.dtype) -> PreTrainedModel:
    """The HF causal LM of ``config_dir`` with its parameters on the meta device (no memory).

    Raises:
        DemixError: the config cannot be built into a causal LM.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        hf_config = AutoConfig.from_pretrained(str(config_dir))
        with _parameters_on_meta():
            model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
    except (ValueError, KeyError, OSError) as e:
        raise DemixError(f"cannot build a causal LM from config.json: {e}", path=config_dir) from None
    return model


def build_live_model(
    model: PreTrainedModel, flat: torch.Tensor, layout: Layout, device: torch.device
) -> PreTrainedModel:
    """Re-point every parameter of ``model`` (from :func:`meta_model`) at its view into ``flat``.

    The layout is keyed by the model's own state-dict names (see :mod:`demix.merge.names`). Tied
    parameters (e.g. ``lm_head.weight`` tied to the input embedding) are one Parameter object shared
    by several modules, stored once in the layout under its first name and re-pointed once; a
    persistent buffer in the layout is replaced by its view too.
    """
    import torch

    by_name = views(flat, layout)
    replacement: dict[int, torch.nn.Parameter] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in replacement:  # the first name of a tied group is the one in the layout
            replacement[id(p)] = torch.nn.Parameter(by_name[name], requires_grad=False)
    for module_name, module in model.named_modules(remove_duplicate=False):
        prefix = f"{module_name}." if module_name else ""
        for attr, p in list(module._parameters.items()):
            if p is not None and id(p) in replacement:
                module._parameters[attr] = replacement[id(p)]
        for attr in list(module._buffers):
            if prefix + attr in by_name:  # a persistent buffer stored in the checkpoints: merged too
                module._buffers[attr] = by_name[prefix + attr]
    model.to(device)  # type: ignore[arg-type]  # the non-persistent buffers (rotary tables)
    model.eval()
    return model
