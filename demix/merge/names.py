"""Checkpoint tensor names -> the model's own parameter names, by transformers' loading rules.

A checkpoint that ``AutoModelForCausalLM.from_pretrained`` loads may name its tensors differently
from the model's parameters: GPT-NeoX stores ``embed_out.weight`` for ``lm_head.weight``, a GPT-2
saved from ``GPT2Model`` lacks the ``transformer.`` prefix, old checkpoints say ``LayerNorm.gamma``.
transformers renames them while loading; here the same functions do the same (its per-model
conversion mapping, ``get_model_conversion_mapping``, applied by ``rename_source_key`` with its
``base_model_prefix`` rule), so what merges is exactly what ``from_pretrained`` would load.

A renaming maps one stored tensor to one parameter, so the tensor is still copied straight from the
memory-mapped file. A *conversion* (several stored tensors fused into one parameter, e.g. MoE experts
stacked) changes the data; such a checkpoint is loaded through ``from_pretrained`` itself, one
component at a time (:attr:`NamePlan.sources` is then ``None``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from demix.errors import DemixError
from demix.merge.checkpoint import Checkpoint

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class ModelSlots:
    """The tensors a merge fills: each unique parameter once (tied ones under their first name), and
    every persistent buffer, with the other names each answers to."""

    shapes: dict[str, tuple[int, ...]]  # canonical name -> shape, in model order
    aliases: dict[str, tuple[str, ...]]  # canonical name -> every state-dict name of it
    buffers: frozenset[str]  # canonical names that are buffers (merged only when stored)


def model_slots(model: PreTrainedModel) -> ModelSlots:
    """The parameters (tied ones once) and persistent buffers of ``model``, by state-dict name."""
    names_of: dict[int, list[str]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in names_of:
            names_of[id(p)] = []
            shapes[name] = tuple(p.shape)
        names_of[id(p)].append(name)
    aliases = {names[0]: tuple(names) for names in names_of.values()}
    persistent = set(model.state_dict(keep_vars=True))
    buffers = set()
    for name, b in model.named_buffers(remove_duplicate=False):
        if name in persistent and name not in shapes:
            shapes[name] = tuple(b.shape)
            aliases[name] = (name,)
            buffers.add(name)
    return ModelSlots(shapes, aliases, frozenset(buffers))


@dataclass(frozen=True)
class NamePlan:
    """Where each model tensor comes from in one checkpoint."""

    sources: dict[str, str] | None  # canonical name -> stored tensor name; None: load via transformers
    unexpected: tuple[str, ...]  # stored tensors the model has no place for (ignored, like transformers)


def _rename_all(model: PreTrainedModel, stored: list[str]) -> tuple[dict[str, str], bool]:
    """``stored name -> state-dict name`` by transformers' loading rules, and whether any tensor
    needs a conversion (not a plain rename)."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    prefix = model.base_model_prefix
    meta = model.state_dict()
    out: dict[str, str] = {}
    converted = False
    for key in stored:  # as in transformers' convert_and_load_state_dict_in_model
        renamed, pattern = rename_source_key(key, renamings, converters, prefix, meta)
        if renamed not in meta and key in meta:
            renamed, pattern = rename_source_key(key, [], [], base_model_prefix=prefix, meta_state_dict=meta)
        converted = converted or pattern is not None
        out[key] = renamed
    return out, converted


def plan_names(model: PreTrainedModel, slots: ModelSlots, ckpt: Checkpoint) -> NamePlan:
    """Map ``ckpt``'s tensors onto ``slots`` and check every parameter has one of the right shape.

    Raises:
        DemixError: a parameter of the model has no tensor in the checkpoint, or a tensor has the
            wrong shape (naming the tensor and its file).
    """
    renamed, converted = _rename_all(model, list(ckpt.tensors))
    canonical = {alias: name for name, names in slots.aliases.items() for alias in names}
    if converted:
        return NamePlan(None, ())
    sources: dict[str, str] = {}
    unexpected: list[str] = []
    for stored, target in renamed.items():
        name = canonical.get(target)
        if name is None:
            unexpected.append(stored)
        elif name not in sources:  # a tied tensor stored under two names: the first is used
            sources[name] = stored
    for name, shape in slots.shapes.items():
        if name not in sources:
            if name in slots.buffers:
                continue
            raise DemixError(
                f"model parameter {name!r} has no tensor in the checkpoint (looked for it under the "
                "names transformers loads it from)",
                path=ckpt.root,
            )
        info = ckpt.tensors[sources[name]]
        if info.shape != shape:
            raise DemixError(
                f"tensor {sources[name]!r} has shape {list(info.shape)} but the model's {name!r} "
                f"expects {list(shape)}",
                path=info.file,
            )
    if unexpected:
        warnings.warn(
            f"{ckpt.root}: {len(unexpected)} stored tensor(s) the model does not use, ignored as "
            f"transformers ignores them: {', '.join(unexpected[:3])}",
            stacklevel=3,
        )
    return NamePlan(sources, tuple(unexpected))


def stored_slots(slots: ModelSlots, plans: list[NamePlan]) -> dict[str, tuple[int, ...]]:
    """The tensors every checkpoint provides: all parameters, and the buffers stored in all of them."""
    out = {}
    for name, shape in slots.shapes.items():
        if name in slots.buffers and not all(p.sources is None or name in p.sources for p in plans):
            continue
        out[name] = shape
    return out
