"""``demix prepare`` for components brought from elsewhere: their tokenizer and held-out text only.

Nothing is trained, so nothing is packed for training: the components' own tokenizer is copied into
``data/tokenizer`` (every later stage loads it from there) and each candidate's held-out documents
(``components.candidates.<name>.heldout``, a file or a few hundred documents of its source) are all
held out, tokenised into ``val.bin`` and written to ``val.jsonl``: the built-in bits-per-byte tasks
that give the law its per-domain losses are made of them. The manifest's training tokens are the
token counts the section declares, so every stage reads one set of counts.

The held-out documents are the user's choice, so they are not split or deduplicated against the
(unseen) training data; at most ``corpora.val_max_docs`` of them, a seeded sample, are kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from demix.config import CandidateConfig, ExperimentConfig, dump_config
from demix.data.manifest import DomainInfo, Manifest
from demix.data.pack import content_hash, token_dtype, tokenize, write_texts, write_tokens
from demix.data.sources import describe, load_candidate
from demix.data.tokenizer import load_pretrained, load_tokenizer, save_tokenizer
from demix.errors import DataError
from demix.run import RunDir
from demix.util.hashing import hash_json, hash_tree
from demix.util.io import write_text_atomic
from demix.util.provenance import provenance


def prepare_brought(cfg: ExperimentConfig, run: RunDir) -> Manifest:
    """The tokenizer and held-out text of a run whose components come from ``components:``.

    Raises:
        DataError: the tokenizer cannot be loaded; a held-out source is missing, unreadable, or has
            fewer than ``corpora.min_val_docs`` documents.
    """
    assert cfg.components is not None and cfg.search.token_counts is not None
    # Read every held-out source before writing anything: a bad one leaves the run as it was.
    texts = {c.name: _held_out(cfg, c) for c in cfg.corpora.candidates}
    tok = load_pretrained(cfg.tokenizer)
    run.data.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run.config, dump_config(cfg))
    save_tokenizer(tok, run.tokenizer)
    saved = load_tokenizer(run)
    dtype = token_dtype(len(saved))
    domains = [
        _domain(run, cand, texts[cand.name], saved, dtype, int(cfg.search.token_counts[cand.name]))
        for cand in cfg.corpora.candidates
    ]
    tok_hash = hash_tree(run.tokenizer)
    manifest = Manifest(
        general=cfg.general,
        dtype=dtype,  # type: ignore[arg-type]
        vocab_size=len(saved),
        eos_id=int(saved.eos_token_id),
        bos_id=saved.bos_token_id,
        pad_id=saved.pad_token_id,
        tokenizer_hash=tok_hash,
        domains=domains,
        provenance=provenance(
            {"tokenizer": tok_hash, "components": hash_json(cfg.components.model_dump(mode="json"))}
        ),
    )
    manifest.save(run)
    return manifest


def _held_out(cfg: ExperimentConfig, cand: CandidateConfig) -> Any:
    """A seeded sample of at most ``val_max_docs`` of the candidate's held-out documents."""
    ds = load_candidate(cand, cfg.corpora)
    corpora = cfg.corpora
    if len(ds) < corpora.min_val_docs:
        raise DataError(
            f"components.candidates.{cand.name}.heldout: {len(ds)} documents, fewer than "
            f"corpora.min_val_docs={corpora.min_val_docs} (give more, or lower corpora.min_val_docs)"
        )
    if len(ds) > corpora.val_max_docs:
        seed = int(hash_json({"heldout": cand.name, "seed": corpora.seed})[:12], 16)
        keep = np.sort(np.random.default_rng(seed).permutation(len(ds))[: corpora.val_max_docs])
        ds = ds.select(keep.tolist())
    return ds


def _domain(
    run: RunDir, cand: CandidateConfig, ds: Any, tokenizer: Any, dtype: str, train_tokens: int
) -> DomainInfo:
    out = run.data / cand.name
    out.mkdir(parents=True, exist_ok=True)
    tok = tokenize(ds, tokenizer, int(tokenizer.eos_token_id), num_proc=1, fingerprint=None, desc=None)
    packed = write_tokens(tok, out / "val.bin", dtype)
    write_texts(ds, out / "val.jsonl")
    return DomainInfo(
        name=cand.name,
        group=cand.group,
        sources=[describe(s) for s in cand.sources],
        train_docs=0,  # trained elsewhere: train_tokens is the declared count, there is no train.bin
        val_docs=packed.docs,
        train_tokens=train_tokens,
        val_tokens=packed.tokens,
        train_bytes=0,
        val_bytes=packed.bytes,
        train_path=f"{cand.name}/train.bin",
        val_path=f"{cand.name}/val.bin",
        val_text_path=f"{cand.name}/val.jsonl",
        content_hash=content_hash(ds),
    )
