"""Loading candidate datasets through ``datasets``: local files, Hub datasets, built-in domains.

Every source becomes a ``datasets.Dataset`` with one column, ``text``; a candidate is the
concatenation of its sources. Problems a user can fix (a missing file, an empty source, a missing
text field, an unreadable file) raise :class:`~demix.errors.DataError` naming the source and key.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demix.config import CandidateConfig, CorporaConfig, SourceConfig
from demix.errors import DataError
from demix.util.hashing import hash_file, hash_json

if TYPE_CHECKING:
    import datasets

# file suffix -> datasets builder; compressed variants (.gz, .zst, .bz2, .xz) are read as well
BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text"}
_COMPRESSED = (".gz", ".zst", ".bz2", ".xz")


def source_key(cand: CandidateConfig, i: int) -> str:
    """``corpora.candidates[<name>].sources[i]``: how messages name a source."""
    return f"corpora.candidates[{cand.name}].sources[{i}]"


def describe(src: SourceConfig) -> str:
    """A short human-readable name for a source (stored in the manifest)."""
    if src.builtin is not None:
        return f"builtin:{src.builtin}"
    if src.hf is not None:
        parts = [src.hf] + ([src.hf_config] if src.hf_config else [])
        return f"hf:{'/'.join(parts)}:{src.split}"
    return f"path:{src.path}"


def _builder(path: Path) -> str | None:
    name = path.name.lower()
    for comp in _COMPRESSED:
        name = name.removesuffix(comp)
    return BUILDERS.get(Path(name).suffix)


def resolve_files(src: SourceConfig, key: str) -> list[Path]:
    """The data files of a ``path`` source: one file, a glob, or every data file under a directory.

    Raises:
        DataError: nothing there, or files of a type demix cannot read.
    """
    assert src.path is not None
    text = os.path.expanduser(str(src.path))
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"{key}.path: the pattern {text!r} matches no files")
    elif Path(text).is_dir():
        files = sorted(p for p in Path(text).rglob("*") if p.is_file() and _builder(p) is not None)
        if not files:
            raise DataError(f"{key}.path: no .jsonl/.json/.parquet/.txt files under {text}")
    elif Path(text).is_file():
        files = [Path(text)]
    else:
        raise DataError(f"{key}.path: no such file or directory: {text}")
    bad = [str(p) for p in files if _builder(p) is None]
    if bad:
        raise DataError(f"{key}.path: cannot read {bad[0]} (supported: .jsonl, .json, .parquet, .txt)")
    return files


def fingerprint(src: SourceConfig, key: str, corpora: CorporaConfig, file_hash: Callable[[Path], str]) -> str:
    """A hash of what determines a source's documents, cheap enough to compute on every run.

    Local files are hashed by content (``file_hash`` may cache by size and mtime); built-in domains
    by name, builder version, Python version, size and seed; Hub datasets by id, config, split and
    revision (pin ``revision`` for a reproducible hash).
    """
    spec: dict[str, Any] = src.model_dump(mode="json")
    if src.builtin is not None:
        from demix.corpora.builtin import builtin_domain

        spec["builtin"] = builtin_domain(src.builtin).fingerprint()
        spec["bytes"] = corpora.builtin_bytes
        spec["seed"] = corpora.seed
    elif src.path is not None:
        spec["files"] = [[str(p), file_hash(p)] for p in resolve_files(src, key)]
    return hash_json(spec)


def default_file_hash(path: Path) -> str:
    try:
        return hash_file(path)
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror}", path=path) from None


def _text_only(ds: datasets.Dataset, src: SourceConfig, key: str, where: str) -> datasets.Dataset:
    field = src.text_field
    if field not in ds.column_names:
        raise DataError(
            f"{key}.text_field: {where} has no field {field!r} (fields: {', '.join(ds.column_names)})"
        )
    ds = ds.select_columns([field])
    if field != "text":
        ds = ds.rename_column(field, "text")
    ds = ds.filter(
        lambda batch: [isinstance(t, str) and bool(t.strip()) for t in batch["text"]],
        batched=True,
        desc=f"non-empty {where}",
    )
    return ds


def _limit(ds: datasets.Dataset, src: SourceConfig) -> datasets.Dataset:
    if src.max_docs is not None and len(ds) > src.max_docs:
        ds = ds.select(range(src.max_docs))
    if src.max_bytes is not None:
        import numpy as np

        sizes = np.fromiter((len(t.encode()) for t in ds["text"]), dtype=np.int64, count=len(ds))
        keep = int(np.searchsorted(np.cumsum(sizes), src.max_bytes, side="left")) + 1
        ds = ds.select(range(min(keep, len(ds))))
    return ds


def _load_builtin(src: SourceConfig, corpora: CorporaConfig) -> datasets.Dataset:
    import datasets

    from demix.corpora.builtin import build_builtin

    assert src.builtin is not None
    docs = build_builtin(src.builtin, corpora.builtin_bytes, corpora.seed)
    return datasets.Dataset.from_dict({"text": docs})


def _load_files(src: SourceConfig, key: str) -> datasets.Dataset:
    import datasets

    files = resolve_files(src, key)
    if all(p.stat().st_size == 0 for p in files):
        raise DataError(f"{key}.path: {src.path} is empty")
    by_builder: dict[str, list[str]] = {}
    for p in files:
        b = _builder(p)
        assert b is not None
        by_builder.setdefault(b, []).append(str(p))
    parts = []
    for builder, paths in by_builder.items():
        kwargs: dict[str, Any] = {"sample_by": src.sample_by} if builder == "text" else {}
        try:
            ds = datasets.load_dataset(builder, data_files=paths, split="train", **kwargs)
        except Exception as e:  # datasets raises many types for a malformed file; all are the user's
            where = paths[0] + (f" (or one of {len(paths) - 1} more)" if len(paths) > 1 else "")
            raise DataError(f"{key}.path: cannot read {where}: {_first_line(e)}") from None
        assert isinstance(ds, datasets.Dataset)
        parts.append(_text_only(ds, src, key, str(src.path)))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _load_hub(src: SourceConfig, key: str) -> datasets.Dataset:
    import datasets

    assert src.hf is not None
    name = describe(src)
    try:
        ds = datasets.load_dataset(
            src.hf, src.hf_config, split=src.split, streaming=src.streaming, revision=src.revision
        )
    except Exception as e:  # offline, not found, gated, bad config: the message says which
        raise DataError(f"{key}.hf: cannot load {name}: {_first_line(e)}") from None
    if isinstance(ds, datasets.IterableDataset):
        # Streaming reads only what max_docs / max_bytes ask for, without downloading the whole set.
        texts: list[str] = []
        total = 0
        for row in ds:
            if src.text_field not in row:
                raise DataError(
                    f"{key}.text_field: {name} has no field {src.text_field!r} ({', '.join(row)})"
                )
            t = row[src.text_field]
            if isinstance(t, str) and t.strip():
                texts.append(t)
                total += len(t.encode())
            if (src.max_docs is not None and len(texts) >= src.max_docs) or (
                src.max_bytes is not None and total >= src.max_bytes
            ):
                break
        return datasets.Dataset.from_dict({"text": texts})
    assert isinstance(ds, datasets.Dataset)
    return _text_only(ds, src, key, name)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()


def load_source(src: SourceConfig, key: str, corpora: CorporaConfig) -> datasets.Dataset:
    """One source as a ``Dataset`` with a ``text`` column, limits applied.

    Raises:
        DataError: the source is missing, unreadable, has no such text field, or is empty.
    """
    if src.builtin is not None:
        ds = _load_builtin(src, corpora)
    elif src.hf is not None:
        ds = _load_hub(src, key)
    else:
        ds = _load_files(src, key)
    ds = _limit(ds, src)
    if len(ds) == 0:
        raise DataError(f"{key}: {describe(src)} has no non-empty documents in field {src.text_field!r}")
    return ds


def load_candidate(cand: CandidateConfig, corpora: CorporaConfig) -> datasets.Dataset:
    """Every source of a candidate, concatenated in order, as one ``Dataset`` with a ``text`` column."""
    import datasets

    parts = [load_source(src, source_key(cand, i), corpora) for i, src in enumerate(cand.sources)]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
