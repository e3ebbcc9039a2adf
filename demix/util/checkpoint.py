"""The one Hugging Face checkpoint writer: config.json, model.safetensors and the tokenizer files.

Everything is first written into a temporary directory beside the target and then renamed into place,
so ``AutoModelForCausalLM.from_pretrained`` never finds a half-written file. Two ways to land it:

* ``replace=True`` (a merged proxy): the temp directory replaces the target directory as a whole; an
  existing one is moved aside first and removed after, so a kill leaves the old export or the new.
* ``replace=False`` (a trained model): the target directory also holds the run's logs and resumable
  checkpoint, so each new file is renamed into it, whole; the caller's summary, written afterwards,
  is what marks the model finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from demix.util.io import atomic_dir

# Files beside the weights that make a checkpoint usable on its own.
TOKENIZER_FILES = (
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


def tokenizer_files(src: Path) -> list[Path]:
    """The files of :data:`TOKENIZER_FILES` that ``src`` holds (a checkpoint or a tokenizer directory)."""
    return [src / f for f in TOKENIZER_FILES if (src / f).is_file()]


def save_hf_checkpoint(
    out: Path, write: Callable[[Path], None], *, files: Iterable[Path] = (), replace: bool = True
) -> Path:
    """Write a Hugging Face checkpoint into ``out`` through a temp directory.

    Args:
        out: the checkpoint directory.
        write: puts ``config.json``, ``model.safetensors`` (and any record of its own) into the
            directory it is given.
        files: copied beside them (tokenizer files, ``generation_config.json``).
        replace: replace ``out`` as a whole (True), or rename the new files into it and keep the rest.

    Returns:
        ``out``.

    Raises:
        DataError: ``replace`` and ``out`` exists but is not a directory.
    """
    out = Path(out)
    if replace:
        with atomic_dir(out) as tmp:
            _fill(tmp, write, files)
        return out
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out))
    try:
        _fill(tmp, write, files)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _fill(tmp: Path, write: Callable[[Path], None], files: Iterable[Path]) -> None:
    write(tmp)
    for f in files:
        shutil.copy2(f, tmp / f.name)
