"""Resume a job from its checkpoint, or start it fresh in an empty output directory.

Resuming truncates ``train_log.jsonl``, ``eval_log.jsonl`` and (DoReMi) ``domain_weights.jsonl`` to
the checkpoint's step, so the logs of a resumed run read like those of an uninterrupted one. Starting
fresh removes whatever ``out`` held: results of other settings are never mixed with this run's.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demix.train import checkpoint as ckpt_io
from demix.train.dist import DistInfo, barrier

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


@dataclass
class Progress:
    """Where a job stands: what a resumable checkpoint restores, advanced by every step."""

    step: int = 0  # optimizer steps done
    tokens: int = 0  # training tokens seen (all ranks)
    loss_ema: float | None = None  # running loss, for the spike guard
    elapsed: float = 0.0  # training seconds so far
    schedule: dict[str, Any] | None = None  # the domain-weight schedule's state at the checkpoint


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything after it is redone anyway
    return rows


def _truncate_log(path: Path, step: int) -> None:
    rows = [r for r in _read_jsonl(path) if r.get("step", 0) <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def resume_or_start(
    out: Path,
    info: DistInfo,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    inputs_hash: str,
    spec: dict[str, Any],
    *,
    fresh: bool,
) -> Progress:
    """Load ``out/checkpoint`` into ``model`` and ``optimizer`` (every rank), or empty ``out`` (rank 0).

    Args:
        fresh: discard an existing checkpoint and start over.

    Raises:
        ConfigError: the checkpoint was written for other inputs (naming the keys that differ).
        DataError: the checkpoint cannot be read.
    """
    ckpt = ckpt_io.checkpoint_dir(out)
    if fresh and ckpt is not None:
        barrier(info)
        if info.is_main:
            ckpt_io.remove_resumable(out)
        barrier(info)
        ckpt = None
    if ckpt is None:
        barrier(info)
        if info.is_main:
            if out.exists():
                shutil.rmtree(out)  # stale results of other settings: never mix them with this run
            out.mkdir(parents=True)
        barrier(info)
        return Progress()
    state = ckpt_io.read_state(ckpt)
    ckpt_io.check_compatible(ckpt, state, inputs_hash, spec)
    ckpt_io.load_resumable(ckpt, model, optimizer)
    barrier(info)
    if info.is_main:
        for log in ("train_log.jsonl", "eval_log.jsonl", "domain_weights.jsonl"):
            if log != "domain_weights.jsonl" or (out / log).is_file():  # static jobs have none
                _truncate_log(out / log, state.step)
    return Progress(state.step, state.tokens, state.loss_ema, state.elapsed, state.schedule)
