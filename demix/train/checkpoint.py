"""Checkpoints: the resumable one (weights + optimizer + RNG + step) and the final Hugging Face one.

The resumable checkpoint lives in ``<out>/checkpoint/`` and is replaced atomically: it is written to
a temp directory, then swapped in by renames, so a kill at any moment leaves either the previous or
the new checkpoint whole. Its ``state.json`` records the job's spec; resuming with a different spec
is refused with the keys that differ, instead of silently mixing two trainings.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demix.errors import ConfigError, DataError
from demix.util.checkpoint import save_hf_checkpoint
from demix.util.io import aside_name, atomic_dir
from demix.util.torchenv import quiet_transformers

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

CHECKPOINT = "checkpoint"
_OLD = aside_name(Path(CHECKPOINT)).name  # the previous checkpoint, between two renames


@dataclass
class ResumeState:
    """What a resumable checkpoint holds besides the weights and the optimizer."""

    step: int  # optimizer steps done
    tokens: int  # training tokens seen (all ranks)
    loss_ema: float | None  # running loss, for the spike check
    elapsed: float  # training seconds so far
    inputs_hash: str
    spec: dict[str, Any]
    schedule: dict[str, Any] | None = None  # the domain-weight schedule's state (DoReMi); None: static


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def spec_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every leaf of two specs that differs."""
    a, b = _flatten(old), _flatten(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def checkpoint_dir(out: Path) -> Path | None:
    """The resumable checkpoint under ``out``, if any (also after a kill between the two renames)."""
    for name in (CHECKPOINT, _OLD):
        p = Path(out) / name
        if (p / "state.json").exists():
            return p
    return None


def save_resumable(
    out: Path, model: PreTrainedModel, optimizer: torch.optim.Optimizer, state: ResumeState
) -> Path:
    """Write ``out/checkpoint/`` atomically (temp dir + renames)."""
    import torch
    from safetensors.torch import save_model

    final = out / CHECKPOINT
    with atomic_dir(final, within=out) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save({"optimizer": optimizer.state_dict(), "rng": rng}, tmp / "trainer.pt")
        (tmp / "state.json").write_text(json.dumps(state.__dict__, indent=2, default=str) + "\n")
    return final


def read_state(ckpt: Path) -> ResumeState:
    """The ``state.json`` of a resumable checkpoint.

    Raises:
        DataError: it is unreadable or incomplete (naming the file).
    """
    path = ckpt / "state.json"
    try:
        data = json.loads(path.read_text())
        return ResumeState(**data)
    except (OSError, ValueError, TypeError) as e:
        raise DataError(
            f"corrupt checkpoint ({e}); delete {ckpt} or rerun with --fresh to start over", path=path
        ) from None


def check_compatible(ckpt: Path, state: ResumeState, inputs_hash: str, spec: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint written for different inputs.

    Raises:
        ConfigError: naming the checkpoint and the keys whose values differ.
    """
    if state.inputs_hash == inputs_hash:
        return
    diff = spec_diff(state.spec, spec) or ["(inputs differ: data, tokenizer or init checkpoint)"]
    raise ConfigError(
        f"checkpoint {ckpt} was written with different settings ({'; '.join(diff[:6])}); "
        "rerun with the original config, or with --fresh to discard it"
    )


def load_resumable(ckpt: Path, model: PreTrainedModel, optimizer: torch.optim.Optimizer) -> None:
    """Load weights, optimizer state and RNG state from ``ckpt`` into the live objects.

    Raises:
        DataError: a file is missing or cannot be read (naming it).
    """
    import torch
    from safetensors.torch import load_model

    weights, trainer = ckpt / "model.safetensors", ckpt / "trainer.pt"
    for p in (weights, trainer):
        if not p.is_file():
            raise DataError("checkpoint file missing; delete the checkpoint or rerun with --fresh", path=p)
    device = next(model.parameters()).device
    try:
        load_model(model, str(weights), device=str(device))
    except Exception as e:  # safetensors raises several types for truncated or foreign files
        raise DataError(f"corrupt checkpoint weights ({e}); rerun with --fresh", path=weights) from None
    try:
        blob = torch.load(trainer, map_location=device, weights_only=False)
        optimizer.load_state_dict(blob["optimizer"])
        torch.set_rng_state(blob["rng"]["torch"].cpu())
        if "cuda" in blob["rng"] and torch.cuda.is_available():
            with contextlib.suppress(RuntimeError):
                torch.cuda.set_rng_state_all([s.cpu() for s in blob["rng"]["cuda"]])
    except Exception as e:
        raise DataError(f"corrupt optimizer state ({e}); rerun with --fresh", path=trainer) from None


def remove_resumable(out: Path) -> None:
    for name in (CHECKPOINT, _OLD):
        shutil.rmtree(Path(out) / name, ignore_errors=True)


def save_final(out: Path, model: PreTrainedModel, tokenizer_dir: Path, dtype: torch.dtype) -> None:
    """Write the Hugging Face checkpoint (config.json, model.safetensors, tokenizer files) into ``out``.

    ``out`` keeps its logs and resumable checkpoint: the files are renamed into it one by one
    (:func:`demix.util.checkpoint.save_hf_checkpoint` with ``replace=False``).
    """
    model = model.to(dtype)  # type: ignore[arg-type]  # nn.Module.to(dtype)
    model.config.use_cache = True

    def write(tmp: Path) -> None:
        with quiet_transformers():
            model.save_pretrained(tmp, safe_serialization=True)

    tok = [f for f in tokenizer_dir.iterdir() if f.is_file()] if tokenizer_dir.is_dir() else []
    save_hf_checkpoint(out, write, files=tok, replace=False)
