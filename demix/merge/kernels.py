"""The weighted sum over the stacked buffer: a torch path (CPU, and any device without Triton) and the
dispatch to the Triton kernel (GPU).

Both compute ``out[b] = Σ_k w[k] · stack[b, k]`` with fp32 accumulation and only preallocated
scratch: a merge allocates nothing and touches each input element once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Elements per chunk of the CPU torch path: small enough that the fp32 accumulator stays in L2 while
# the K components stream through it (measured in scripts/bench_merge.py, docs/perf/merge.md).
CPU_CHUNK = 1 << 19
KERNEL_BLOCK = 2048  # elements per Triton program; every layout block is a multiple of it


class TorchMerger:
    """``out = Σ w_k stack[:, k]`` chunk by chunk with torch ops, accumulating in fp32.

    For fp32 buffers the output chunk itself is the accumulator; otherwise a preallocated fp32
    accumulator of one chunk is used and rounded into the output once per chunk.
    """

    def __init__(self, stack: torch.Tensor, out: torch.Tensor, chunk: int = CPU_CHUNK) -> None:
        import torch

        n_blocks, _, block = stack.shape
        self.stack = stack
        self.out = out  # (n_blocks, block)
        self.per_chunk = max(1, chunk // block)
        rows = min(self.per_chunk, n_blocks)
        self.acc = (
            None
            if out.dtype == torch.float32
            else torch.empty(rows, block, dtype=torch.float32, device=out.device)
        )

    def __call__(
        self, w: Sequence[float], stack: torch.Tensor | None = None, out: torch.Tensor | None = None
    ) -> None:
        """Merge ``stack`` (default: the whole stacked buffer) into ``out`` with weights ``w``.

        ``stack``/``out`` may be a range of blocks (host streaming hands chunks of blocks).
        """
        import torch

        stack = self.stack if stack is None else stack
        out = self.out if out is None else out
        active = [(k, float(x)) for k, x in enumerate(w) if x != 0.0]
        n_blocks = stack.shape[0]
        if not active:
            out.zero_()
            return
        for b0 in range(0, n_blocks, self.per_chunk):
            b1 = min(n_blocks, b0 + self.per_chunk)
            acc = out[b0:b1] if self.acc is None else self.acc[: b1 - b0]
            (k0, w0), rest = active[0], active[1:]
            if self.acc is None:
                torch.mul(stack[b0:b1, k0], w0, out=acc)
            else:  # upcast first: mul(out=fp32) would round the product to the input dtype
                acc.copy_(stack[b0:b1, k0])
                acc.mul_(w0)
            for k, wk in rest:
                acc.add_(stack[b0:b1, k], alpha=wk)
            if self.acc is not None:
                out[b0:b1].copy_(acc)


def _fused_sum(stack: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> None:
    """out = Σ_k w[k]·stack[:, k] in fp32, rounded once; compiled into one loop by Inductor."""
    acc = stack[:, 0].float() * w[0]
    for k in range(1, stack.shape[1]):
        acc = acc + stack[:, k].float() * w[k]
    out.copy_(acc.to(out.dtype))


class CompiledMerger:
    """The same sum fused by ``torch.compile`` into one vectorised C++ loop (Inductor).

    Eager torch needs a pass per component plus dtype conversions; the fused loop reads each input
    element once and writes each output once, so on CPU it runs at the copy-bandwidth floor. Shapes
    are fixed per engine and the weights are a tensor argument, so it compiles once (on the first
    merge; Inductor caches the kernel on disk for later processes).
    """

    def __init__(self) -> None:
        import torch

        self.fn = torch.compile(_fused_sum, dynamic=False, fullgraph=True)

    def __call__(self, w: torch.Tensor, stack: torch.Tensor, out: torch.Tensor) -> None:
        self.fn(stack, w, out)


def triton_available() -> bool:
    """Whether the Triton kernel can be imported (triton installed)."""
    import importlib.util

    return importlib.util.find_spec("triton") is not None
