"""Config sections for candidate corpora and the tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from demix.config.base import Count, StrictModel

# The built-in offline domains (demix.corpora.builtin registers exactly these, in this order). Kept
# here so validating a config never loads a corpus; tests/test_corpora.py checks the two agree.
BUILTIN_DOMAINS = ("code", "comments", "math", "prose", "tables")


class SourceConfig(StrictModel):
    """One source of a candidate dataset: exactly one of ``path``, ``hf`` or ``builtin``.

    Example::

        {path: data/math/*.jsonl, text_field: text}
        {hf: togethercomputer/RedPajama-Data-1T-Sample, hf_config: null, split: train}
        {builtin: python_code}
    """

    path: Path | None = None  # a .jsonl/.json/.parquet/.txt file, a glob, or a directory of them
    hf: str | None = None  # a Hugging Face dataset id (needs the network or a local cache)
    hf_config: str | None = None
    split: str = "train"
    revision: str | None = None  # a Hub commit or tag; pin it so the source's hash means its content
    text_field: str = "text"
    sample_by: Literal["document", "paragraph", "line"] = "document"  # what one .txt document is
    builtin: str | None = None  # a built-in offline domain: one of BUILTIN_DOMAINS
    max_docs: int | None = Field(default=None, gt=0)  # take at most this many documents
    max_bytes: Count | None = None  # or at most this many bytes of text
    streaming: bool = False  # stream a Hub dataset instead of downloading it whole

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        kinds = [k for k in ("path", "hf", "builtin") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a source needs exactly one of path, hf, builtin (got {kinds or 'none'})")
        if self.builtin is not None and self.builtin not in BUILTIN_DOMAINS:
            raise ValueError(
                f"builtin: no built-in domain {self.builtin!r} (known: {', '.join(BUILTIN_DOMAINS)})"
            )
        if self.streaming and self.hf is None:
            raise ValueError("streaming: only Hub sources (hf) can be streamed")
        return self


class CandidateConfig(StrictModel):
    """A candidate dataset: a name (the domain) and one or more sources."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    sources: list[SourceConfig] = Field(min_length=1)
    group: str | None = None  # capability group this domain mostly serves (general, code, math, ...)

    @model_validator(mode="after")
    def _reserved(self) -> CandidateConfig:
        if self.name == "tokenizer":  # data/tokenizer/ holds the tokenizer
            raise ValueError("name: 'tokenizer' is reserved, choose another candidate name")
        return self


class CorporaConfig(StrictModel):
    """Which candidate datasets to consider and how to split them."""

    recipe: str | None = None  # a recipe in corpora/ (e.g. demo, redpajama-7, demix-7) giving candidates
    candidates: list[CandidateConfig] = Field(default_factory=list)
    general: str | None = None  # the candidate that is the general data (required once candidates are known)
    builtin_bytes: Count = 3_000_000  # size of each built-in offline domain, in bytes of text
    val_fraction: float = Field(default=0.02, gt=0, lt=0.5)  # held-out share, split by document
    val_max_docs: int = Field(default=500, gt=0)  # at most this many held-out documents per domain
    min_val_docs: int = Field(default=20, gt=0)
    dedup_threshold: float = Field(
        default=0.8, gt=0, le=1
    )  # Jaccard (word 5-grams) at which a held-out doc counts as a near-duplicate
    seed: int = 0
    num_proc: int = Field(default=2, ge=1)  # worker processes for tokenisation

    @model_validator(mode="after")
    def _names(self) -> CorporaConfig:
        names = [c.name for c in self.candidates]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"candidate names must be unique, repeated: {', '.join(dup)}")
        return self

    @field_validator("general")
    @classmethod
    def _general_is_candidate(cls, v: str | None, info: ValidationInfo) -> str | None:
        # A field validator (candidates are validated first), so the error names corpora.general.
        names = [c.name for c in info.data.get("candidates") or []]
        if names and v is not None and v not in names:
            raise ValueError(f"{v!r} is not a candidate (candidates: {', '.join(names)})")
        return v


class TokenizerConfig(StrictModel):
    """Train a byte-level BPE on the candidates, or load a pretrained tokenizer."""

    kind: Literal["bpe", "pretrained"] = "bpe"
    name_or_path: str | None = None  # for kind=pretrained: a Hub name or a local directory
    vocab_size: int = Field(default=8192, ge=256, le=1_000_000)
    sample_bytes: Count = 2_000_000  # bytes of text per domain used to train the BPE
    min_frequency: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _pretrained_needs_name(self) -> TokenizerConfig:
        if self.kind == "pretrained" and not self.name_or_path:
            raise ValueError("tokenizer.kind=pretrained needs tokenizer.name_or_path")
        return self
