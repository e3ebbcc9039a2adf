"""One training micro-step and the optimizer: shared by the training loop and ``scripts/bench_train.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from demix.config import TrainConfig
from demix.train.hardware import autocast

if TYPE_CHECKING:
    import torch


def make_optimizer(
    model: torch.nn.Module, train: TrainConfig, lr: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW decaying matrices only (not norms or biases); the fused kernel on CUDA."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": train.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=train.betas, fused=device.type == "cuda")


def forward_backward(
    model: torch.nn.Module, x: torch.Tensor, amp: torch.dtype | None, grad_accum: int
) -> torch.Tensor:
    """Next-token loss of ``x`` (B, T+1) on the model's device; backpropagates loss / grad_accum.

    Returns:
        The detached mean token loss (fp32 scalar).
    """
    import torch.nn.functional as F

    with autocast(x.device, amp):
        logits = model(input_ids=x[:, :-1]).logits  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())
    (loss / grad_accum).backward()
    return loss.detach()
