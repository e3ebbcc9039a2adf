"""Tokenising a domain and packing it into flat token files that training memory-maps.

``train.bin`` / ``val.bin`` hold every document's token ids followed by EOS, back to back, as
uint16 (or uint32 when the vocabulary needs it); ``val.jsonl`` holds the held-out text in the same
order. Each file is written to a temp path and renamed, so a stopped prepare leaves no half file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.util.io import atomic_path

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

PARALLEL_MIN_DOCS = 4000  # below this, worker processes cost more to start than they save


@dataclass(frozen=True)
class Packed:
    docs: int
    tokens: int
    bytes: int


def token_dtype(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def content_hash(ds: datasets.Dataset) -> str:
    """SHA-256 of a domain's documents in order (each length-prefixed, so boundaries count)."""
    h = hashlib.sha256()
    for start in range(0, len(ds), 10_000):
        for t in ds[start : start + 10_000]["text"]:
            b = t.encode()
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    return h.hexdigest()


class _Encode:
    """The map function: picklable, so ``datasets`` can ship it to worker processes."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, eos_id: int) -> None:
        self.tokenizer = tokenizer
        self.eos_id = eos_id

    def __call__(self, batch: dict[str, list[str]]) -> dict[str, Any]:
        # A literal "<|endoftext|>" in a document is text, not a document boundary.
        ids = self.tokenizer(batch["text"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return {
            "ids": [[*x, self.eos_id] for x in ids],
            "n_bytes": [len(t.encode()) for t in batch["text"]],
        }


def tokenize(
    ds: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    eos_id: int,
    *,
    num_proc: int,
    fingerprint: str | None,
    desc: str | None,
) -> datasets.Dataset:
    """``ds`` with columns ``ids`` (token ids + EOS per document) and ``n_bytes``."""
    procs = num_proc if len(ds) >= PARALLEL_MIN_DOCS else 1
    return ds.map(
        _Encode(tokenizer, eos_id),
        batched=True,
        batch_size=1000,
        num_proc=procs if procs > 1 else None,
        remove_columns=ds.column_names,
        new_fingerprint=fingerprint,
        desc=desc,
    )


def write_tokens(tokenized: datasets.Dataset, path: Path, dtype: str) -> Packed:
    """Concatenate the ``ids`` column into ``path`` as a flat ``dtype`` array."""
    import pyarrow.compute as pc

    tokens = 0
    n_bytes = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for batch in tokenized.with_format("arrow").iter(batch_size=10_000):
            flat = pc.list_flatten(batch.column("ids")).to_numpy(zero_copy_only=False)
            f.write(flat.astype(dtype, copy=False).tobytes())
            tokens += len(flat)
            n_bytes += int(pc.sum(batch.column("n_bytes")).as_py() or 0)
    return Packed(docs=len(tokenized), tokens=tokens, bytes=n_bytes)


def write_texts(ds: datasets.Dataset, path: Path) -> None:
    """The held-out documents as JSONL, one ``{"text": ...}`` per line."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for start in range(0, len(ds), 10_000):
            for t in ds[start : start + 10_000]["text"]:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")


def count_tokens(path: Path, dtype: str) -> int:
    return int(path.stat().st_size // np.dtype(dtype).itemsize)
