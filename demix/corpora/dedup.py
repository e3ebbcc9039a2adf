"""Near-duplicate detection with MinHash over word shingles.

A held-out document that is a near-copy of a training document (a licence header, a generated
template, a mirrored file) would make held-out loss and the evaluation tasks built from it measure
memorisation. :func:`near_duplicates` flags such documents; prepare keeps them out of the held-out set.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

NUM_PERM = 64
BANDS = 16  # 16 bands x 4 rows: pairs with Jaccard >= ~0.6 collide in some band with high probability
SHINGLE = 5  # words per shingle
_PRIME = np.uint64((1 << 31) - 1)
_WORD = re.compile(r"\w+")


def _perm_params(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0x5EED)
    a = rng.integers(1, int(_PRIME), size=num_perm, dtype=np.uint64)
    b = rng.integers(0, int(_PRIME), size=num_perm, dtype=np.uint64)
    return a, b


def shingles(text: str, k: int = SHINGLE) -> np.ndarray:
    """CRC32 hashes (reduced mod 2^31-1) of the word k-grams of ``text``; one for a very short text."""
    words = _WORD.findall(text.lower())
    if len(words) < k:
        grams = [" ".join(words)]
    else:
        grams = [" ".join(words[i : i + k]) for i in range(len(words) - k + 1)]
    h = np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))
    return np.unique(h % _PRIME)


def minhash(texts: Sequence[str], num_perm: int = NUM_PERM) -> np.ndarray:
    """MinHash signatures, shape (len(texts), num_perm), uint32 (values < 2^31).

    The share of equal entries between two rows estimates the Jaccard similarity of their shingle sets.
    """
    a, b = _perm_params(num_perm)
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for i, text in enumerate(texts):
        x = shingles(text)  # (n,)
        out[i] = ((a[:, None] * x[None, :] + b[:, None]) % _PRIME).min(axis=1)  # (num_perm,)
    return out


def _band_keys(sig: np.ndarray, bands: int) -> np.ndarray:
    """One 64-bit key per band, shape (n, bands)."""
    n, p = sig.shape
    rows = sig.astype(np.uint64).reshape(n, bands, p // bands)
    key = np.zeros((n, bands), dtype=np.uint64)
    for j in range(rows.shape[2]):
        key = key * np.uint64(1_000_003) ^ rows[:, :, j]
    return key


def jaccard(a: str, b: str, k: int = SHINGLE) -> float:
    """Exact Jaccard similarity of the word k-gram sets of two texts."""
    sa, sb = set(shingles(a, k).tolist()), set(shingles(b, k).tolist())
    return len(sa & sb) / max(1, len(sa | sb))


def near_duplicate_signatures(
    sig: np.ndarray,
    others: Iterable[np.ndarray],
    *,
    threshold: float = 0.8,
    bands: int = BANDS,
    check_within: bool = True,
) -> np.ndarray:
    """:func:`near_duplicates` on MinHash signatures: ``sig`` (n, P) against chunks of (m, P).

    Bands (LSH) find candidate pairs; a pair counts when the share of equal signature entries
    (the Jaccard estimate) is at least ``threshold``.
    """
    flagged = np.zeros(len(sig), dtype=bool)
    if not len(sig):
        return flagged
    keys = _band_keys(sig, bands)  # (n, bands)

    def check(other_sig: np.ndarray, same: bool) -> None:
        other_keys = _band_keys(other_sig, bands)
        for band in range(bands):
            for j in np.flatnonzero(np.isin(other_keys[:, band], keys[:, band])):
                for i in np.flatnonzero(keys[:, band] == other_keys[j, band]):
                    if flagged[i] or (same and i == j):
                        continue
                    if float(np.mean(sig[i] == other_sig[j])) >= threshold:
                        flagged[i] = True

    if check_within:
        check(sig, same=True)
    for chunk in others:
        if len(chunk):
            check(np.asarray(chunk), same=False)
    return flagged


def near_duplicates(
    candidates: Sequence[str],
    others: Iterable[Sequence[str]],
    *,
    threshold: float = 0.8,
    num_perm: int = NUM_PERM,
    bands: int = BANDS,
) -> np.ndarray:
    """Which candidates are near-duplicates (estimated Jaccard >= threshold) of another document.

    Args:
        candidates: the documents to check (e.g. the proposed held-out set); they are also checked
            against each other, and both members of a near-duplicate pair are flagged.
        others: the documents to check against, in chunks (e.g. the training set, streamed).
        threshold: estimated Jaccard similarity of word 5-gram sets at or above which two documents
            count as near-duplicates.

    Returns:
        Bool array over ``candidates``.
    """
    return near_duplicate_signatures(
        minhash(candidates, num_perm),
        (minhash(chunk, num_perm) for chunk in others),
        threshold=threshold,
        bands=bands,
    )
