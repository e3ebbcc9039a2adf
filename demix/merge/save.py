"""Export a merged proxy as an ordinary HF checkpoint (config.json, model.safetensors, tokenizer).

Written into a temporary directory beside the target and renamed into place, so an interrupted export
never leaves a half-written checkpoint where ``AutoModelForCausalLM.from_pretrained`` would find it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from demix.errors import DemixError
from demix.mixture import as_dict
from demix.util.hashing import hash_json
from demix.util.io import write_json_atomic
from demix.util.provenance import provenance

if TYPE_CHECKING:
    from demix.merge.engine import MergeEngine

# Files beside the weights that make a checkpoint usable on its own (tokenizer, generation defaults).
_EXTRA = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)


def save_checkpoint(engine: MergeEngine, out_dir: Path, tokenizer_dir: Path | None = None) -> Path:
    """Write the engine's current merge to ``out_dir`` (replaced atomically if it exists).

    Args:
        engine: the engine whose live model holds the merge to export.
        out_dir: the checkpoint directory to write.
        tokenizer_dir: where the tokenizer files come from (default: the first component).

    Returns:
        ``out_dir``.

    Raises:
        DemixError: ``tokenizer_dir`` is given but holds no tokenizer files.
    """
    from safetensors.torch import save_file

    src_tok = tokenizer_dir if tokenizer_dir is not None else engine.checkpoints[0].root
    tok_files = [src_tok / f for f in _EXTRA if (src_tok / f).is_file()]
    if tokenizer_dir is not None and not tok_files:
        raise DemixError(
            "no tokenizer files (tokenizer.json, tokenizer_config.json, ...)", path=tokenizer_dir
        )

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        engine.model.config.save_pretrained(str(tmp))
        gen = engine.checkpoints[0].root / "generation_config.json"
        if gen.is_file():
            shutil.copy2(gen, tmp / gen.name)
        for f in tok_files:
            shutil.copy2(f, tmp / f.name)
        # Views share one buffer; safetensors wants separate storages, so each is copied to host.
        tensors = {n: t.detach().to("cpu", copy=True).contiguous() for n, t in engine.state_dict().items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del tensors
        weights = engine.last_weights
        info = {
            "method": engine.last_method,
            "weights": as_dict(weights, engine.names) if weights is not None else None,
            "components": {n: str(c.root) for n, c in zip(engine.names, engine.checkpoints, strict=True)},
            "base": str(engine.base.root) if engine.base is not None else None,
            "dtype": str(engine.dtype).removeprefix("torch."),
        }
        info["provenance"] = provenance({"merge": hash_json(info)})
        write_json_atomic(tmp / "demix_merge.json", info)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` onto ``out_dir``; an existing ``out_dir`` is moved aside first, then removed."""
    if not out_dir.exists():
        tmp.rename(out_dir)
        return
    if not out_dir.is_dir():
        raise DemixError("exists and is not a directory", path=out_dir)
    old = out_dir.with_name(f".{out_dir.name}.old-{tmp.name[-12:]}")
    out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
