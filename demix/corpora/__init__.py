"""Candidate text that needs no network: the built-in offline domains, and near-duplicate detection.

Loading a candidate's sources (local files, Hub datasets, built-in domains) is :mod:`demix.data.sources`.

Example::

    from demix.corpora import build_builtin, builtin_names
    builtin_names()  # ['code', 'comments', 'math', 'prose', 'tables']
"""

from __future__ import annotations

from demix.corpora.builtin import BuiltinDomain, build_builtin, builtin_domain, builtin_names
from demix.corpora.dedup import jaccard, minhash, near_duplicate_signatures, near_duplicates

__all__ = [
    "BuiltinDomain",
    "build_builtin",
    "builtin_domain",
    "builtin_names",
    "jaccard",
    "minhash",
    "near_duplicate_signatures",
    "near_duplicates",
]
