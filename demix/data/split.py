"""Holding out documents: a seeded split by document, with near-duplicates kept out of held-out.

Held-out text is what per-domain loss and the evaluation tasks are built from, so a held-out
document must not be a near-copy of any other document of its domain (which would be in training).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from demix.config import CorporaConfig
from demix.errors import DataError
from demix.util.hashing import hash_json

if TYPE_CHECKING:
    import datasets

CHUNK = 10_000  # documents compared per step when scanning the training side


@dataclass(frozen=True)
class Split:
    """Document indices of one domain. ``near_duplicates``: candidates moved back to training."""

    train: np.ndarray  # sorted int64 indices
    val: np.ndarray  # sorted int64 indices
    near_duplicates: int
    signatures: np.ndarray  # (n_docs, P) MinHash signatures of every document, for cross-domain checks


def held_out_size(n_docs: int, corpora: CorporaConfig) -> int:
    """``val_fraction`` of the documents, at least ``min_val_docs``, at most ``val_max_docs``."""
    want = round(corpora.val_fraction * n_docs)
    return int(min(corpora.val_max_docs, max(corpora.min_val_docs, want)))


def split_settings(corpora: CorporaConfig) -> dict[str, object]:
    """The config keys a split depends on (part of every domain's input hash)."""
    return {
        k: getattr(corpora, k)
        for k in ("val_fraction", "val_max_docs", "min_val_docs", "seed", "dedup_threshold")
    }


def split_documents(texts: Sequence[str] | datasets.Dataset, name: str, corpora: CorporaConfig) -> Split:
    """Choose held-out documents for domain ``name``.

    A seeded shuffle proposes about twice the held-out size; proposals that are near-duplicates
    (MinHash estimate of word 5-gram Jaccard >= ``corpora.dedup_threshold``) of any other document
    of the domain go back to training, and the first ``held_out_size`` of the rest are held out.

    Raises:
        DataError: too few documents to hold out ``min_val_docs``, or too few that are not
            near-duplicates.
    """
    from demix.corpora.dedup import minhash, near_duplicate_signatures

    n = len(texts)
    n_val = held_out_size(n, corpora)
    if n < 2 * corpora.min_val_docs:
        raise DataError(
            f"candidate {name!r}: {n} documents, too few to hold out corpora.min_val_docs="
            f"{corpora.min_val_docs} and train on the rest (need at least {2 * corpora.min_val_docs})"
        )
    seed = int(hash_json({"split": name, "seed": corpora.seed})[:12], 16)
    perm = np.random.default_rng(seed).permutation(n)
    n_prop = min(2 * n_val, n // 2)
    proposed = np.sort(perm[:n_prop])
    sig = np.concatenate([minhash(chunk) for chunk in _chunks(texts)])  # (n, P)
    is_prop = np.zeros(n, dtype=bool)
    is_prop[proposed] = True
    dup = near_duplicate_signatures(
        sig[proposed], [sig[~is_prop]], threshold=corpora.dedup_threshold
    )  # (n_prop,) bool
    # Keep the shuffle's order when choosing among the clean proposals, so the choice is seeded.
    rank = {int(i): r for r, i in enumerate(perm[:n_prop])}
    clean = sorted((rank[int(i)], int(i)) for i, d in zip(proposed, dup, strict=True) if not d)
    val = np.sort(np.array([i for _, i in clean[:n_val]], dtype=np.int64))
    if len(val) < corpora.min_val_docs:
        raise DataError(
            f"candidate {name!r}: only {len(val)} of {n_prop} proposed held-out documents are not "
            f"near-duplicates of other documents; deduplicate the source, or raise "
            f"corpora.dedup_threshold (now {corpora.dedup_threshold})"
        )
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return Split(
        train=np.flatnonzero(mask).astype(np.int64), val=val, near_duplicates=int(dup.sum()), signatures=sig
    )


def _chunks(texts: Sequence[str] | datasets.Dataset) -> Iterator[Sequence[str]]:
    """All documents in order, in chunks (a Dataset is read chunk by chunk)."""
    for start in range(0, len(texts), CHUNK):
        stop = min(start + CHUNK, len(texts))
        yield texts[start:stop] if isinstance(texts, Sequence) else texts[start:stop]["text"]
