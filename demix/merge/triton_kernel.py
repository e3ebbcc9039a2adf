"""The GPU merge kernel: out[b] = Σ_k w[k] · stack[b, k], accumulated in fp32, one pass over memory.

Importing this module imports triton; the engine imports it only for ``backend="triton"``. With
``TRITON_INTERPRET=1`` set before the import, the same kernel runs on CPU tensors (how CI tests it).

Memory traffic is the floor of the sum: every program reads ``BLOCK`` contiguous elements of each
component with a non-zero weight and writes ``BLOCK`` elements once. Zero weights (single-component
baselines, the base row of a linear merge) are skipped with a uniform branch, so they cost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import triton
import triton.language as tl

if TYPE_CHECKING:
    import torch

from demix.merge.kernels import KERNEL_BLOCK as BLOCK


@triton.jit
def _merge_kernel(
    stack_ptr,  # (n_blocks, K, B) component blocks
    w_ptr,  # (K,) fp32 weights
    out_ptr,  # (n_blocks, B) merged output
    B,  # elements per block (a multiple of BLOCK)
    K: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    per_block = B // BLOCK
    b = pid // per_block
    offs = (pid % per_block) * BLOCK + tl.arange(0, BLOCK)
    src = stack_ptr + b * K * B + offs
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for k in tl.static_range(K):
        wk = tl.load(w_ptr + k)
        if wk != 0.0:
            x = tl.load(src + k * B)
            acc += wk * x.to(tl.float32)
    tl.store(out_ptr + b * B + offs, acc.to(out_ptr.dtype.element_ty, fp_downcast_rounding="rtne"))


def merge_triton(stack: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> None:
    """Write ``Σ_k w[k] · stack[:, k]`` into ``out`` (shape ``(n_blocks, B)``), fp32 accumulation.

    Args:
        stack: (n_blocks, K, B) contiguous, on the device.
        w: (K,) float32 on the same device.
        out: (n_blocks, B) contiguous, same dtype as ``stack``.
    """
    n_blocks, k, b = stack.shape
    if b % BLOCK:
        raise ValueError(f"block size {b} is not a multiple of the kernel's {BLOCK}")
    grid = (n_blocks * (b // BLOCK),)
    _merge_kernel[grid](stack, w, out, b, K=k, BLOCK=BLOCK)
