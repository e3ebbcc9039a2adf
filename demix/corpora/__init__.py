"""Candidate datasets: sources (local files, Hub datasets, built-in offline domains) loaded via ``datasets``.

Example::

    from demix.corpora import load_candidate
    ds = load_candidate(cfg.corpora.candidates[0], cfg.corpora)  # datasets.Dataset, column "text"
"""

from __future__ import annotations

from demix.corpora.builtin import BuiltinDomain, build_builtin, builtin_domain, builtin_names
from demix.corpora.dedup import jaccard, minhash, near_duplicate_signatures, near_duplicates
from demix.corpora.sources import (
    default_file_hash,
    describe,
    fingerprint,
    load_candidate,
    load_source,
    resolve_files,
    source_key,
)

__all__ = [
    "BuiltinDomain",
    "build_builtin",
    "builtin_domain",
    "builtin_names",
    "default_file_hash",
    "describe",
    "fingerprint",
    "jaccard",
    "load_candidate",
    "load_source",
    "minhash",
    "near_duplicate_signatures",
    "near_duplicates",
    "resolve_files",
    "source_key",
]
