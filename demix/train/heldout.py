"""Held-out loss per domain: the curves the step law fits, and the check that components specialise.

Each domain's held-out token file is cut into non-overlapping windows of ``seq_len`` targets, spread
evenly over the file; the loss of a window is its mean token cross-entropy (nats). A domain's loss is
the mean over windows and its standard error is ``std(windows) / sqrt(n)``. The windows are the same
for every model, so two models can also be compared window by window (paired differences).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from demix.errors import DataError
from demix.train.dist import DistInfo, all_reduce_sum

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from demix.data import Manifest
    from demix.run import RunDir


@dataclass(frozen=True)
class DomainLoss:
    """Held-out loss of one model on one domain."""

    mean: float
    stderr: float
    windows: np.ndarray  # (n,) mean token loss of each window, in a fixed order

    @property
    def n(self) -> int:
        return int(self.windows.size)


def window_starts(n_tokens: int, seq_len: int, max_tokens: int) -> np.ndarray:
    """Start offsets of the evaluation windows (each ``seq_len + 1`` tokens) in a file of ``n_tokens``.

    Raises:
        DataError: the file is shorter than one window.
    """
    available = (n_tokens - 1) // seq_len
    if available < 1:
        raise DataError(f"held-out split has {n_tokens} tokens, fewer than seq_len+1={seq_len + 1}")
    n = min(available, max(1, max_tokens // seq_len))
    return np.linspace(0, available - 1, n).round().astype(np.int64) * seq_len


def _summarise(losses: np.ndarray) -> DomainLoss:
    n = losses.size
    se = float(losses.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return DomainLoss(float(losses.mean()), se, losses)


def heldout_loss(
    model: PreTrainedModel,
    run: RunDir,
    manifest: Manifest,
    *,
    seq_len: int,
    max_tokens: int,
    batch_size: int = 16,
    domains: Sequence[str] | None = None,
    autocast_dtype: torch.dtype | None = None,
    dist: DistInfo | None = None,
) -> dict[str, DomainLoss]:
    """Held-out loss of ``model`` on each domain (manifest order), on the device the model is on.

    Args:
        model: a causal LM (possibly ``torch.compile``-d); it is put back in its previous mode after.
        seq_len: targets per window.
        max_tokens: at most this many held-out target tokens per domain.
        domains: a subset of the manifest's domains (default: all).
        autocast_dtype: evaluate under autocast in this dtype (bf16 on GPU).
        dist: under DDP, each rank evaluates every world_size-th window and the results are summed.

    Returns:
        Domain name -> :class:`DomainLoss` (the same on every rank).
    """
    import torch
    import torch.nn.functional as F

    from demix.train.hardware import autocast

    info = dist or DistInfo()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: dict[str, DomainLoss] = {}
    try:
        for name in domains or manifest.names:
            tokens = manifest.tokens(run, name, "val")
            try:
                starts = window_starts(len(tokens), seq_len, max_tokens)
            except DataError as e:
                raise DataError(f"domain {name!r}: {e}") from None
            losses = torch.zeros(len(starts), dtype=torch.float64, device=device)
            mine = np.arange(info.rank, len(starts), info.world_size)
            for i in range(0, len(mine), batch_size):
                idx = mine[i : i + batch_size]
                rows = np.stack([tokens[s : s + seq_len + 1] for s in starts[idx]]).astype(np.int64)
                x = torch.from_numpy(rows).to(device)  # (b, seq_len + 1)
                with torch.no_grad(), autocast(device, autocast_dtype):
                    logits = model(input_ids=x[:, :-1]).logits  # (b, seq_len, vocab)
                ce = F.cross_entropy(logits.float().transpose(1, 2), x[:, 1:], reduction="none")
                losses[torch.from_numpy(idx).to(device)] = ce.mean(dim=1).double()
            all_reduce_sum(losses, info)
            out[name] = _summarise(losses.cpu().numpy())
    finally:
        model.train(was_training)
    return out


def loss_table(losses: dict[str, DomainLoss]) -> dict[str, dict[str, float]]:
    """``{"loss": {domain: mean}, "stderr": {domain: se}}`` — the JSON form written to eval logs."""
    return {
        "loss": {d: round(v.mean, 6) for d, v in losses.items()},
        "stderr": {d: round(v.stderr, 6) for d, v in losses.items()},
    }
