"""``data/manifest.json``: what prepare produced, in the canonical domain order.

Every later stage reads the domain order, token counts (the search prior and export caps), token
files and held-out text from here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from demix.errors import DataError, StageError
from demix.run import RunDir

if TYPE_CHECKING:
    from demix.config import ExperimentConfig

MANIFEST_VERSION = 1


class DomainInfo(BaseModel):
    """One candidate dataset after preparation. Paths are relative to ``data/``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    group: str | None = None
    sources: list[str]
    train_docs: int
    val_docs: int
    train_tokens: int
    val_tokens: int
    train_bytes: int
    val_bytes: int
    train_path: str  # flat token ids, every document followed by EOS
    val_path: str
    val_text_path: str  # JSONL, one {"text": ...} per held-out document, in val_path's order
    content_hash: str  # hash of the source text this domain was built from


class Manifest(BaseModel):
    """The prepared data of a run. ``domains`` is the canonical order for every stage."""

    model_config = ConfigDict(extra="forbid")

    version: int = MANIFEST_VERSION
    general: str
    dtype: Literal["uint16", "uint32"]
    vocab_size: int
    eos_id: int
    bos_id: int | None = None
    pad_id: int | None = None
    tokenizer_hash: str
    domains: list[DomainInfo]
    provenance: dict = {}

    # ---- access ---------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.domains]

    def domain(self, name: str) -> DomainInfo:
        for d in self.domains:
            if d.name == name:
                return d
        raise DataError(f"unknown domain {name!r} (domains: {', '.join(self.names)})")

    def index(self, name: str) -> int:
        return self.names.index(self.domain(name).name)

    def token_counts(self, split: Literal["train", "val"] = "train") -> np.ndarray:
        """Tokens per domain in canonical order (the token-count prior, unnormalised)."""
        return np.array([getattr(d, f"{split}_tokens") for d in self.domains], dtype=np.float64)

    def groups(self) -> dict[str, str | None]:
        return {d.name: d.group for d in self.domains}

    def tokens(self, run: RunDir, name: str, split: Literal["train", "val"] = "train") -> np.memmap:
        """The token ids of one domain, memory-mapped read-only."""
        d = self.domain(name)
        path = run.data / (d.train_path if split == "train" else d.val_path)
        if not path.is_file():
            raise DataError("token file missing; run `demix prepare` again", path=path)
        return np.memmap(path, dtype=np.dtype(self.dtype), mode="r")

    def val_texts(self, run: RunDir, name: str) -> list[str]:
        """The held-out documents of one domain, as text (evaluation builds tasks from them)."""
        path = run.data / self.domain(name).val_text_path
        try:
            with open(path) as f:
                return [json.loads(line)["text"] for line in f if line.strip()]
        except FileNotFoundError:
            raise DataError("held-out text missing; run `demix prepare` again", path=path) from None

    # ---- I/O ------------------------------------------------------------------------------------

    @classmethod
    def load(cls, run: RunDir) -> Manifest:
        """Read ``data/manifest.json`` of a run.

        Raises:
            StageError: prepare has not run yet.
            DataError: the manifest is unreadable.
        """
        path = run.manifest
        if not path.is_file():
            raise StageError(f"no prepared data at {path}; run `demix prepare` first")
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as e:
            raise DataError(f"malformed manifest: {e.errors()[0]['msg']}", path=path) from None

    def save(self, run: RunDir) -> None:
        from demix.util.io import write_text_atomic

        write_text_atomic(run.manifest, self.model_dump_json(indent=2) + "\n")


def token_counts(
    cfg: ExperimentConfig, run: RunDir | None, domains: Sequence[str], *, manifest: Manifest | None = None
) -> np.ndarray | None:
    """Training tokens per domain, in ``domains``' order: the one source every stage uses.

    Precedence: ``search.token_counts`` when the config states it (components brought from
    elsewhere, or a user who knows the full datasets' sizes better than the prepared sample), else
    the prepared manifest's training tokens, else ``None`` (not known yet: before ``prepare``).
    A domain the chosen source does not cover also gives ``None``. ``manifest``: the run's, when the
    caller has loaded it already.
    """
    if cfg.search.token_counts is not None:
        given = cfg.search.token_counts
        return np.array([float(given[d]) for d in domains]) if all(d in given for d in domains) else None
    if manifest is None:
        if run is None or not run.manifest.is_file():
            return None
        manifest = Manifest.load(run)
    m = manifest
    counts = dict(zip(m.names, m.token_counts("train"), strict=True))
    return np.array([float(counts[d]) for d in domains]) if all(d in counts for d in domains) else None
