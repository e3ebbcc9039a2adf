"""The work behind ``prepare``: candidates loaded once on demand, and the two phases per domain.

See :mod:`demix.data.prepare` for what each phase reads and writes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demix.config import CandidateConfig, ExperimentConfig
from demix.data.manifest import DomainInfo
from demix.data.pack import content_hash, tokenize, write_texts, write_tokens
from demix.data.split import split_documents
from demix.data.tokenizer import sample_texts
from demix.errors import DataError
from demix.run import RunDir
from demix.util.hashing import hash_file, hash_json
from demix.util.io import atomic_path, write_json_atomic

if TYPE_CHECKING:
    import datasets


class FileHashes:
    """Content hashes of local source files, cached by (size, mtime) like git's index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.cache: dict[str, list[Any]] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            self.cache = {}
        self.dirty = False

    def __call__(self, p: Path) -> str:
        try:
            st = p.stat()
            key = str(p.resolve())
            hit = self.cache.get(key)
            if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                return str(hit[2])
            digest = hash_file(p)
        except OSError as e:
            raise DataError(f"cannot read: {e.strerror}", path=p) from None
        self.cache[key] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.dirty:
            write_json_atomic(self.path, self.cache)


class Corpora:
    """Candidates loaded and split on first use only: a rerun with nothing to do loads nothing."""

    def __init__(self, cfg: ExperimentConfig, progress: bool) -> None:
        self.cfg = cfg
        self.progress = progress
        self._data: dict[str, datasets.Dataset] = {}
        self._splits: dict[str, Any] = {}

    def dataset(self, cand: CandidateConfig) -> datasets.Dataset:
        from demix.data.sources import load_candidate

        if cand.name not in self._data:
            with datasets_progress(self.progress):
                self._data[cand.name] = load_candidate(cand, self.cfg.corpora)
        return self._data[cand.name]

    def split(self, cand: CandidateConfig) -> Any:
        if cand.name not in self._splits:
            self._splits[cand.name] = split_documents(self.dataset(cand), cand.name, self.cfg.corpora)
        return self._splits[cand.name]

    def bpe_sample(self, cand: CandidateConfig, max_bytes: int) -> Iterator[str]:
        """A seeded sample of the candidate's training documents (held-out text never trains the BPE)."""
        import numpy as np

        train = self.split(cand).train
        order = np.random.default_rng(self.cfg.corpora.seed).permutation(train)
        ds = self.dataset(cand)
        step = 1000
        texts = (t for s in range(0, len(order), step) for t in ds.select(order[s : s + step])["text"])
        return sample_texts(texts, max_bytes)


@contextlib.contextmanager
def datasets_progress(enabled: bool) -> Iterator[None]:
    import datasets

    was = datasets.is_progress_bar_enabled()
    (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
    try:
        yield
    finally:
        (datasets.enable_progress_bars if was else datasets.disable_progress_bars)()


def build_train(
    cfg: ExperimentConfig,
    run: RunDir,
    cand: CandidateConfig,
    corpora: Corpora,
    key: str,
    tokenizer: Any,
    dtype: str,
) -> dict[str, Any]:
    """Phase 1 of a domain: split it, pack ``train.bin``, keep the held-out proposals and the MinHash
    signatures of the training documents (for the other domains' held-out checks)."""
    import numpy as np

    ds = corpora.dataset(cand)
    split = corpora.split(cand)
    out = run.data / cand.name
    train = ds.select(split.train.tolist())
    tok = tokenize(
        train,
        tokenizer,
        int(tokenizer.eos_token_id),
        num_proc=cfg.corpora.num_proc,
        fingerprint=hash_json([key, "train"])[:40],
        desc=f"tokenize {cand.name}",
    )
    packed = write_tokens(tok, out / "train.bin", dtype)
    write_texts(ds.select(split.val.tolist()), out / "heldout.jsonl")
    with atomic_path(out / "train.minhash.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, split.signatures[split.train])
    return {
        "train_docs": packed.docs,
        "train_tokens": packed.tokens,
        "train_bytes": packed.bytes,
        "content_hash": content_hash(ds),
        "near_duplicates_in_domain": split.near_duplicates,
    }


def build_val(
    cfg: ExperimentConfig, run: RunDir, cand: CandidateConfig, others: list[str], tokenizer: Any, dtype: str
) -> dict[str, Any]:
    """Phase 2 of a domain: drop held-out proposals that are near-duplicates of another domain's
    training documents, then pack ``val.bin`` and write ``val.jsonl``. Cheap: a few hundred documents."""
    import datasets
    import numpy as np

    from demix.corpora.dedup import minhash, near_duplicate_signatures

    out = run.data / cand.name
    with open(out / "heldout.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    flagged = near_duplicate_signatures(
        minhash(texts),
        (np.load(run.data / o / "train.minhash.npy", mmap_mode="r") for o in others),
        threshold=cfg.corpora.dedup_threshold,
        check_within=False,
    )
    kept = [t for t, bad in zip(texts, flagged, strict=True) if not bad]
    if len(kept) < cfg.corpora.min_val_docs:
        raise DataError(
            f"candidate {cand.name!r}: only {len(kept)} held-out documents are not near-duplicates of "
            f"other candidates' training documents (corpora.min_val_docs={cfg.corpora.min_val_docs}); "
            "deduplicate the candidates against each other"
        )
    ds = datasets.Dataset.from_dict({"text": kept})
    tok = tokenize(ds, tokenizer, int(tokenizer.eos_token_id), num_proc=1, fingerprint=None, desc=None)
    packed = write_tokens(tok, out / "val.bin", dtype)
    write_texts(ds, out / "val.jsonl")
    return {
        "val_docs": packed.docs,
        "val_tokens": packed.tokens,
        "val_bytes": packed.bytes,
        "near_duplicates_across_domains": int(flagged.sum()),
    }


def domain_info(cand: CandidateConfig, train: dict[str, Any], val: dict[str, Any]) -> DomainInfo:
    from demix.data.sources import describe

    return DomainInfo(
        name=cand.name,
        group=cand.group,
        sources=[describe(s) for s in cand.sources],
        train_docs=train["train_docs"],
        val_docs=val["val_docs"],
        train_tokens=train["train_tokens"],
        val_tokens=val["val_tokens"],
        train_bytes=train["train_bytes"],
        val_bytes=val["val_bytes"],
        train_path=f"{cand.name}/train.bin",
        val_path=f"{cand.name}/val.bin",
        val_text_path=f"{cand.name}/val.jsonl",
        content_hash=train["content_hash"],
    )


def have_files(run: RunDir, name: str, *files: str) -> bool:
    return all((run.data / name / f).is_file() for f in files)
