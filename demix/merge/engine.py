"""The merge engine: K components loaded once into a stacked buffer, merged per proxy into a live model.

A search evaluates hundreds of proxies Σ wᵢθᵢ of the same components. DeMix wrote each to disk with
mergekit and loaded it back (20+ s per proxy for 7×1.7B); here the components are copied once into a
``(n_blocks, K, block)`` buffer on the device and every merge is one pass over it that writes the
live HF model's weights in place: no allocation, no disk I/O, at the memory-bandwidth floor.

Example::

    engine = MergeEngine.from_checkpoints(["models/components/code", "models/components/prose"])
    engine.merge([0.3, 0.7])          # engine.model now holds 0.3·θ_code + 0.7·θ_prose
    engine.save("proxy/", tokenizer_dir="data/tokenizer")
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import DemixError
from demix.merge.checkpoint import Checkpoint, open_checkpoint
from demix.merge.checks import check_compatible, check_dtypes
from demix.merge.kernels import KERNEL_BLOCK
from demix.merge.layout import Layout, build_live_model, meta_model
from demix.merge.loading import load_row, plan_memory
from demix.merge.methods import check_weights, get_method, merge_with_mergekit, native_row_weights
from demix.merge.names import NamePlan, model_slots, plan_names, stored_slots
from demix.merge.save import save_checkpoint
from demix.mixture import as_dict
from demix.util.torchenv import resolve_device, resolve_dtype

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

COMPILE_MIN = 4_000_000  # parameters from which the torch path compiles its fused sum by default
BLOCK = 1 << 16  # elements per block of the stacked buffer (a multiple of the Triton kernel's BLOCK)


def _plan(
    sources: list[Checkpoint], dtype: Any, dt: torch.dtype
) -> tuple[PreTrainedModel, dict[str, tuple[int, ...]], list[NamePlan]]:
    """The checks made before any tensor is read, then the meta model, the tensors to merge (by the
    model's own names) and where each checkpoint stores them."""
    check_compatible(sources)
    model = meta_model(sources[0].root, dt)
    slots = model_slots(model)
    plans = [plan_names(model, slots, c) for c in sources]
    check_dtypes(sources, plans, dtype)
    for ckpt, plan in zip(sources, plans, strict=True):
        for stored in (plan.sources or {}).values():
            t = ckpt.tensors[stored]
            if not t.dtype.startswith(("float", "bfloat")):
                raise DemixError(
                    f"tensor {stored!r} has dtype {t.dtype}; only floating tensors can be merged", path=t.file
                )
    return model, stored_slots(slots, plans), plans


def _resolve(device: str, dtype: Any, backend: str) -> tuple[torch.device, torch.dtype, str]:
    dev = resolve_device(device, key="merge.device")
    dt = resolve_dtype(dtype, dev, key="merge.dtype")
    if backend == "auto":
        from demix.merge.kernels import triton_available

        backend = "triton" if dev.type == "cuda" and triton_available() else "torch"
    if backend not in ("torch", "triton"):
        raise DemixError(f"merge backend {backend!r} is not one of auto, torch, triton")
    if backend == "triton" and dev.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise DemixError("merge backend triton needs a CUDA device (or TRITON_INTERPRET=1 to test on CPU)")
    return dev, dt, backend


class MergeEngine:
    """Components stacked once on a device; :meth:`merge` writes Σ wᵢθᵢ into :attr:`model` in place.

    Build with :meth:`from_checkpoints` (or :func:`demix.merge.engine_for_run`). The stacked buffer
    holds the K components (and the base, when one is given) as rows of shape ``(n_blocks, rows,
    block)``; :attr:`model`'s parameters are views into one flat output buffer.
    """

    def __init__(
        self,
        checkpoints: list[Checkpoint],
        base: Checkpoint | None,
        names: list[str],
        layout: Layout,
        stack: torch.Tensor,
        flat: torch.Tensor,
        model: PreTrainedModel,
        backend: str,
        streamed: bool,
    ) -> None:
        import torch

        self.checkpoints = checkpoints
        self.base = base
        self.names = names
        self.layout = layout
        self.stack = stack  # (n_blocks, rows, block), on the device or in pinned host memory
        self.flat = flat  # (n_blocks * block,) the live model's weights
        self.model = model
        self.backend = backend
        self.streamed = streamed
        self.device = flat.device
        self.dtype = flat.dtype
        self._out = flat.view(layout.n_blocks, layout.block)
        rows = stack.shape[1]
        # Preallocated per-merge state: host and device weight vectors, the torch path's scratch.
        self._w_host = torch.zeros(rows, dtype=torch.float32)
        self._w_dev = torch.zeros(rows, dtype=torch.float32, device=self.device)
        self._torch_merger: Any = None
        self._compiled: Any = None
        self.compiled = False  # CPU: fuse the sum with torch.compile (set by from_checkpoints)
        self._stream: Any = None
        self.stream_bytes = 256 << 20  # size of each of the two device staging buffers when streaming
        self.last_weights: np.ndarray | None = None
        self.last_method: str | None = None

    @property
    def k(self) -> int:
        """Number of components (the length of a weight vector)."""
        return len(self.checkpoints)

    @property
    def numel(self) -> int:
        """P: merged parameters (tied tensors once)."""
        return self.layout.numel

    # ---- building -------------------------------------------------------------------------------

    @classmethod
    def from_checkpoints(
        cls,
        dirs: Sequence[str | Path],
        *,
        device: str = "auto",
        dtype: Any = "auto",
        backend: str = "auto",
        base: str | Path | None = None,
        names: Sequence[str] | None = None,
        stream: bool | None = None,
        block: int = BLOCK,
        compile: bool | None = None,
    ) -> MergeEngine:
        """Open K HF checkpoints, check they can be merged, copy them once into the stacked buffer and
        build the live model.

        Args:
            dirs: component checkpoint directories (safetensors, sharded or not), in weight order;
                tensors are matched to the model's parameters by transformers' loading rules.
            device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
            dtype: buffer and model dtype; "auto" is bfloat16 on CUDA, float32 on CPU, and needs
                every component stored in one dtype (any other value converts them).
            backend: "auto" (Triton on CUDA, torch otherwise), "torch" or "triton".
            base: base checkpoint, needed for task_arithmetic and mergekit's base methods.
            names: one name per component for messages and exports (default: directory names).
            stream: keep the stack in (pinned) host memory and stream blocks to the device per merge;
                None decides by free device memory, False refuses with a message when it does not fit.
            block: elements per block (a multiple of the Triton kernel's 2048).
            compile: torch backend: fuse the sum with ``torch.compile`` (one pass over memory, at the
                floor on CPU; compiles once, ~1 min on a small CPU, cached on disk). None: when the
                model has at least 4M parameters; it falls back to eager torch if compiling fails.

        Raises:
            DemixError: missing/corrupt/truncated files or ``.bin`` weights (with how to convert),
                components whose configs differ (every key, each component's value), components
                stored in different dtypes while ``dtype`` is "auto" (the tensor, both files and
                the ``merge.dtype`` that resolves it), a parameter with no stored tensor under any
                name transformers loads it from, or a stack that fits nowhere (the sizes).
        """
        import torch

        if not dirs:
            raise DemixError("no component checkpoints to merge")
        if block <= 0 or block % KERNEL_BLOCK:
            raise ValueError(f"block={block} must be a positive multiple of {KERNEL_BLOCK}")
        dev, dt, backend = _resolve(device, dtype, backend)
        names = [Path(d).name for d in dirs] if names is None else list(names)
        if len(names) != len(dirs):
            raise DemixError(f"{len(names)} names for {len(dirs)} component checkpoints")
        ckpts = [open_checkpoint(d) for d in dirs]
        base_ckpt = open_checkpoint(base) if base is not None else None
        sources = ckpts + ([base_ckpt] if base_ckpt is not None else [])
        model, shapes, plans = _plan(sources, dtype, dt)

        total = sum(int(np.prod(s)) for s in shapes.values())
        block = min(block, -(-total // KERNEL_BLOCK) * KERNEL_BLOCK)  # tiny models: one small block
        layout = Layout.build(shapes, block)
        streamed = plan_memory(layout, len(sources), dt, dev, stream)
        host = streamed or dev.type == "cpu"
        stack = torch.empty(
            (layout.n_blocks, len(sources), layout.block),
            dtype=dt,
            device="cpu" if host else dev,
            pin_memory=streamed and dev.type == "cuda",
        )
        stack[-1].zero_()  # the padding after the last tensor
        for row, (ckpt, plan) in enumerate(zip(sources, plans, strict=True)):
            load_row(stack, row, ckpt, layout, plan.sources)
        flat = torch.zeros(layout.padded, dtype=dt, device=dev)
        model = build_live_model(model, flat, layout, dev)
        engine = cls(ckpts, base_ckpt, names, layout, stack, flat, model, backend, streamed)
        engine.compiled = (
            backend == "torch" and not streamed and (compile if compile is not None else total >= COMPILE_MIN)
        )
        engine.merge(np.full(len(ckpts), 1.0 / len(ckpts)))
        return engine

    # ---- merging --------------------------------------------------------------------------------

    def merge(
        self,
        w: Sequence[float] | np.ndarray,
        *,
        method: str = "linear",
        normalize: bool = True,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the merge of the components with weights ``w`` into :attr:`model`, in place.

        ``linear``: Σ wᵢθᵢ with w normalised to sum 1. ``task_arithmetic``: base + Σ wᵢ(θᵢ − base),
        usually with ``normalize=False`` (normalised weights make it equal to linear). Any other name
        is a mergekit method (optional extra), given ``params`` (density, ...).

        Raises:
            DemixError: bad weights (naming the value), an unknown method, or a method that needs
                the base model when none was loaded.
        """
        import torch

        m = get_method(method)
        wv = check_weights(w, self.names, normalize=normalize, method=method)
        if m.needs_base and self.base is None:
            raise DemixError(f"merge method {method!r} needs a base model (merge.base, or the run's base)")
        with torch.no_grad():
            if m.native:
                self._apply(native_row_weights(method, wv, self.base is not None))
            else:
                self._apply_mergekit(method, wv, dict(params or {}))
        self.last_weights, self.last_method = wv, method

    def _apply(self, rows: list[float]) -> None:
        if self.streamed:
            self._apply_streamed(rows)
        elif self.backend == "triton":
            self._triton(self.stack, rows, self._out)
        else:
            self._torch(rows, self.stack, self._out)

    def _torch(self, rows: list[float], stack: torch.Tensor, out: torch.Tensor) -> None:
        from demix.merge.kernels import CompiledMerger, TorchMerger

        if self.compiled and stack is self.stack:
            if self._compiled is None:
                self._compiled = CompiledMerger()
            self._w_host.numpy()[:] = rows
            w = self._w_host if self.device.type == "cpu" else self._w_dev.copy_(self._w_host)
            try:
                self._compiled(w, stack, out)
                return
            except Exception as e:
                warnings.warn(
                    f"torch.compile of the merge failed ({type(e).__name__}: {e}); using eager torch",
                    stacklevel=3,
                )
                self.compiled = False
        if self._torch_merger is None:
            self._torch_merger = TorchMerger(self.stack, self._out)
        self._torch_merger(rows, stack, out)

    def _triton(self, stack: torch.Tensor, rows: list[float], out: torch.Tensor) -> None:
        from demix.merge.triton_kernel import merge_triton

        self._w_host.numpy()[:] = rows
        self._w_dev.copy_(self._w_host, non_blocking=False)
        merge_triton(stack, self._w_dev, out)

    def _apply_streamed(self, rows: list[float]) -> None:
        """Host-resident stack: copy chunks of blocks to two device staging buffers, alternating, and
        merge each while the next one is in flight."""
        import torch

        if self._stream is None or self._stream[0] != self.stream_bytes:
            per_block = self.stack[0].numel() * self.stack.element_size()
            n = max(1, min(self.layout.n_blocks, self.stream_bytes // per_block))
            staging = [
                torch.empty((n, *self.stack.shape[1:]), dtype=self.dtype, device=self.device)
                for _ in range(2)
            ]
            copy_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
            self._stream = (self.stream_bytes, n, staging, copy_stream)
        _, n, staging, copy_stream = self._stream
        cuda = copy_stream is not None
        events: list[Any] = [None, None]
        for i, b0 in enumerate(range(0, self.layout.n_blocks, n)):
            b1 = min(self.layout.n_blocks, b0 + n)
            buf = staging[i % 2][: b1 - b0]
            if cuda:
                if events[i % 2] is not None:  # the kernel that last read this buffer is done
                    copy_stream.wait_event(events[i % 2])
                with torch.cuda.stream(copy_stream):
                    buf.copy_(self.stack[b0:b1], non_blocking=True)
                torch.cuda.current_stream(self.device).wait_stream(copy_stream)
            else:
                buf.copy_(self.stack[b0:b1])
            if self.backend == "triton":
                self._triton(buf, rows, self._out[b0:b1])
            else:
                self._torch(rows, buf, self._out[b0:b1])
            if cuda:
                events[i % 2] = torch.cuda.current_stream(self.device).record_event()

    def _apply_mergekit(self, method: str, w: np.ndarray, params: dict[str, Any]) -> None:
        """Tensor by tensor: gather the K (and base) copies from the stack, merge with mergekit, write
        the result into the live model's view."""
        ids = [*self.names, "__base__"] if self.base is not None else list(self.names)
        base_index = len(self.names) if self.base is not None else None
        for slot in self.layout.slots:
            tensors = [self.row_tensor(r, slot.name).to(self.device) for r in range(len(ids))]
            merged = merge_with_mergekit(method, tensors, w, ids, base_index, params, self.dtype)
            self.tensor(slot.name).copy_(merged)

    # ---- access ---------------------------------------------------------------------------------

    def tensor(self, name: str) -> torch.Tensor:
        """The live model's tensor ``name`` (a view into the flat buffer)."""
        for s in self.layout.slots:
            if s.name == name:
                return self.flat[s.offset : s.offset + s.numel].view(s.shape)
        raise KeyError(name)

    def row_tensor(self, row: int, name: str) -> torch.Tensor:
        """A copy of tensor ``name`` of stack row ``row`` (component ``row``; the base is row K)."""
        import torch

        slot = next(s for s in self.layout.slots if s.name == name)
        parts = [self.stack[b, row, start:stop] for b, start, stop, _ in self.layout.pieces(slot)]
        return torch.cat(parts).view(slot.shape)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The merged tensors by the model's state-dict names (views; tied tensors once)."""
        return {s.name: self.tensor(s.name) for s in self.layout.slots}

    def save(self, out_dir: str | Path, tokenizer_dir: str | Path | None = None) -> Path:
        """Write the current merge as an HF checkpoint; see :func:`demix.merge.save.save_checkpoint`."""
        w = self.last_weights
        record = {
            "method": self.last_method,
            "weights": as_dict(w, self.names) if w is not None else None,
            "components": {n: str(c.root) for n, c in zip(self.names, self.checkpoints, strict=True)},
            "base": str(self.base.root) if self.base is not None else None,
            "dtype": str(self.dtype).removeprefix("torch."),
        }
        return save_checkpoint(
            Path(out_dir),
            config=self.model.config,
            tensors=self.state_dict(),
            record=record,
            source=self.checkpoints[0].root,
            tokenizer_dir=Path(tokenizer_dir) if tokenizer_dir is not None else None,
        )
