"""``demix prepare``: candidates -> tokenizer -> held-out split -> packed token files -> manifest.

Two phases per domain, each skipped when its inputs' hash (in ``data/.stamps/<domain>.json``) is
unchanged:

1. *train*: load the domain, choose held-out documents (seeded; none a near-duplicate of another
   document of the domain), pack ``train.bin``, keep the held-out proposals (``heldout.jsonl``) and
   the MinHash signatures of the training documents (``train.minhash.npy``). Inputs: the domain's
   source content, the split settings, the tokenizer's files.
2. *held-out*: drop proposals that are near-duplicates of any other domain's training documents,
   pack ``val.bin`` and write ``val.jsonl``. Inputs: phase 1 of every domain; cheap (a few hundred
   documents), so adding or changing one candidate re-tokenises only that candidate's training data.

The BPE tokenizer is retrained only when the candidates or ``tokenizer`` settings change (and a
retrained tokenizer that comes out identical redoes nothing else). A rerun with nothing to do reads
only stamps, which takes well under a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demix.config import CandidateConfig, ExperimentConfig, dump_config
from demix.data.manifest import DomainInfo, Manifest
from demix.data.pack import token_dtype
from demix.data.phases import (
    Corpora,
    FileHashes,
    build_train,
    build_val,
    datasets_progress,
    domain_info,
    have_files,
)
from demix.data.split import split_settings
from demix.data.tokenizer import load_pretrained, load_tokenizer, save_tokenizer, train_bpe
from demix.errors import StageError
from demix.run import RunDir
from demix.util.hashing import hash_json, hash_tree
from demix.util.io import write_json_atomic, write_text_atomic
from demix.util.provenance import provenance

PREPARE_VERSION = 1  # bump when the layout or content of what prepare writes changes


def _stamp(run: RunDir, name: str) -> Path:
    return run.data / ".stamps" / f"{name}.json"


def _read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


_TOKENIZER_FIELDS = ("hash", "vocab_size", "eos_id", "bos_id", "pad_id")


def _tokenizer_key(cfg: ExperimentConfig, fps: dict[str, str]) -> str:
    tcfg = cfg.tokenizer
    spec: dict[str, Any] = {"tokenizer": tcfg.model_dump(mode="json"), "version": PREPARE_VERSION}
    if tcfg.kind == "bpe":
        spec["sources"] = fps
        spec["split"] = split_settings(cfg.corpora)
    elif tcfg.name_or_path and Path(tcfg.name_or_path).is_dir():
        spec["local"] = hash_tree(Path(tcfg.name_or_path))
    return hash_json(spec)


def _saved_tokenizer(run: RunDir, key: str) -> dict[str, Any] | None:
    """The tokenizer stamp (hash, vocabulary size, special ids) when it was made from ``key``."""
    stamp = _read_stamp(_stamp(run, "_tokenizer"))
    if (
        stamp
        and stamp.get("key") == key
        and all(f in stamp for f in _TOKENIZER_FIELDS)
        and (run.tokenizer / "tokenizer_config.json").is_file()
    ):
        return stamp
    return None


def _build_tokenizer(cfg: ExperimentConfig, run: RunDir, corpora: Corpora, key: str) -> dict[str, Any]:
    """Train the BPE on a sample of every candidate's training documents, or load a pretrained one.

    The stamp keeps its hash, vocabulary size and special ids, so a rerun with nothing to do never
    imports transformers.
    """
    tcfg = cfg.tokenizer
    if tcfg.kind == "bpe":
        texts = (t for c in cfg.corpora.candidates for t in corpora.bpe_sample(c, tcfg.sample_bytes))
        save_tokenizer(train_bpe(texts, tcfg), run.tokenizer)
    else:
        save_tokenizer(load_pretrained(tcfg), run.tokenizer)
    saved = load_tokenizer(run)  # as every later stage will see it
    info = {
        "key": key,
        "hash": hash_tree(run.tokenizer),
        "vocab_size": len(saved),
        "eos_id": saved.eos_token_id,
        "bos_id": saved.bos_token_id,
        "pad_id": saved.pad_token_id,
    }
    write_json_atomic(_stamp(run, "_tokenizer"), info)
    return info


def prepare(cfg: ExperimentConfig, run: RunDir, *, progress: bool = True) -> Manifest:
    """Build the run's tokenizer, token files and ``data/manifest.json`` from the candidates.

    Idempotent: unchanged sources, tokenizer and settings make it return the existing manifest in
    seconds; a change redoes what it touches (see the module docstring).

    Args:
        cfg: the experiment (``corpora`` and ``tokenizer`` sections are read).
        run: the run directory; ``config.yaml`` and ``data/`` are written.
        progress: show progress bars.

    Returns:
        The manifest, domains in config order (the canonical order of every later stage).

    Raises:
        DataError: a source is missing, unreadable, empty or lacks its text field; a domain has
            too few documents to hold some out.
    """
    from demix.util.progress import bar as progress_bar

    if cfg.components is not None:  # trained elsewhere: only their tokenizer and held-out text
        from demix.data.brought import prepare_brought

        if not cfg.components.has_heldout:
            raise StageError(
                "nothing to prepare: the components: section gives no held-out text "
                "(components.candidates.<name>.heldout); the other stages need no prepared data"
            )
        return prepare_brought(cfg, run)
    run.data.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run.config, dump_config(cfg))
    fps = _source_fingerprints(cfg, run)
    corpora = Corpora(cfg, progress)
    names = [c.name for c in cfg.corpora.candidates]
    stamps = {n: _read_stamp(_stamp(run, n)) or {} for n in names}
    tok_key = _tokenizer_key(cfg, fps)
    tok_info = _saved_tokenizer(run, tok_key)
    # Load and split every candidate that will be rebuilt before writing anything, so a bad source
    # fails with the previous data (and manifest) untouched.
    for cand in cfg.corpora.candidates:
        if tok_info is None or stamps[cand.name].get("train_key") != _train_key(
            cfg, fps[cand.name], tok_info
        ):
            corpora.split(cand)
    if tok_info is None:
        _invalidate(run)
        tok_info = _build_tokenizer(cfg, run, corpora, tok_key)
    work = _Work(cfg, run, corpora, stamps, token_dtype(int(tok_info["vocab_size"])), progress)
    train_keys = {n: _train_key(cfg, fps[n], tok_info) for n in names}
    bar = progress_bar(total=2 * len(names), desc="prepare", unit="step", disable=not progress)
    # Phase 1: each domain's own split and training tokens; depends on that domain only.
    for cand in cfg.corpora.candidates:
        bar.set_postfix_str(f"{cand.name}: train")
        work.train_phase(cand, train_keys[cand.name])
        bar.update()
    # Phase 2: held-out sets, cleaned against every other domain's training documents.
    domains: list[DomainInfo] = []
    for cand in cfg.corpora.candidates:
        bar.set_postfix_str(f"{cand.name}: held-out")
        domains.append(work.val_phase(cand, train_keys))
        bar.update()
    bar.close()
    _save_if_changed(run, _manifest(cfg, tok_info, work.dtype, domains, fps))
    _remove_stale(run, set(names))
    return Manifest.load(run)


def _source_fingerprints(cfg: ExperimentConfig, run: RunDir) -> dict[str, str]:
    """One hash per candidate of what its sources hold (local files hashed once, cached by mtime)."""
    from demix.data.sources import fingerprint, source_key

    hashes = FileHashes(run.data / ".stamps" / "_files.json")
    fps = {
        c.name: hash_json(
            [fingerprint(s, source_key(c, i), cfg.corpora, hashes) for i, s in enumerate(c.sources)]
        )
        for c in cfg.corpora.candidates
    }
    hashes.save()
    return fps


def _train_key(cfg: ExperimentConfig, source_fp: str, tok_info: dict[str, Any]) -> str:
    """The inputs of a domain's phase 1: its sources, the split settings and the tokenizer."""
    return hash_json(
        {
            "source": source_fp,
            "split": split_settings(cfg.corpora),
            "tokenizer": tok_info["hash"],
            "dtype": token_dtype(int(tok_info["vocab_size"])),
            "version": PREPARE_VERSION,
        }
    )


def _val_key(cfg: ExperimentConfig, name: str, train_keys: dict[str, str]) -> str:
    """The inputs of a domain's phase 2: phase 1 of it and of every other domain, the dedup settings."""
    return hash_json(
        {
            "train": train_keys[name],
            "others": {n: k for n, k in train_keys.items() if n != name},
            "threshold": cfg.corpora.dedup_threshold,
            "min_val_docs": cfg.corpora.min_val_docs,
        }
    )


@dataclass
class _Work:
    """What both phases share: the stamps they update and the tokenizer, loaded once when needed."""

    cfg: ExperimentConfig
    run: RunDir
    corpora: Corpora
    stamps: dict[str, dict[str, Any]]
    dtype: str
    progress: bool
    _tokenizer: Any = None

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.run)
        return self._tokenizer

    def train_phase(self, cand: CandidateConfig, key: str) -> None:
        """Phase 1 of one domain (split, ``train.bin``, held-out proposals), unless it is done."""
        st = self.stamps[cand.name]
        if st.get("train_key") == key and have_files(
            self.run, cand.name, "train.bin", "heldout.jsonl", "train.minhash.npy"
        ):
            return
        _invalidate(self.run)
        tokenizer = self.tokenizer()
        with datasets_progress(self.progress):
            train = build_train(self.cfg, self.run, cand, self.corpora, key, tokenizer, self.dtype)
        self.stamps[cand.name] = st = {"train_key": key, "train": train}
        write_json_atomic(_stamp(self.run, cand.name), st)

    def val_phase(self, cand: CandidateConfig, train_keys: dict[str, str]) -> DomainInfo:
        """Phase 2 of one domain (``val.bin``, ``val.jsonl``) unless it is done; the domain's entry."""
        others = [n for n in train_keys if n != cand.name]
        key = _val_key(self.cfg, cand.name, train_keys)
        st = self.stamps[cand.name]
        if st.get("val_key") != key or not have_files(self.run, cand.name, "val.bin", "val.jsonl"):
            _invalidate(self.run)
            tokenizer = self.tokenizer()
            with datasets_progress(False):  # a few hundred documents: no bars
                st["val"] = build_val(self.cfg, self.run, cand, others, tokenizer, self.dtype)
            st["val_key"] = key
            write_json_atomic(_stamp(self.run, cand.name), st)
        # The group is a label, not an input: changing it rebuilds nothing.
        return domain_info(cand, st["train"], st["val"])


def _manifest(
    cfg: ExperimentConfig,
    tok_info: dict[str, Any],
    dtype: str,
    domains: list[DomainInfo],
    fps: dict[str, str],
) -> Manifest:
    tok_hash = str(tok_info["hash"])
    return Manifest(
        general=cfg.general,
        dtype=dtype,  # type: ignore[arg-type]
        vocab_size=int(tok_info["vocab_size"]),
        eos_id=int(tok_info["eos_id"]),
        bos_id=tok_info["bos_id"],
        pad_id=tok_info["pad_id"],
        tokenizer_hash=tok_hash,
        domains=domains,
        provenance=provenance(
            {"tokenizer": tok_hash, "split": hash_json(split_settings(cfg.corpora))}
            | {f"source:{n}": fp for n, fp in fps.items()}
        ),
    )


def _invalidate(run: RunDir) -> None:
    """Remove the manifest before changing what it describes: a stopped prepare then leaves no
    manifest pointing at half-rewritten files, and later stages ask for prepare to be rerun."""
    with contextlib.suppress(FileNotFoundError):
        run.manifest.unlink()


def _save_if_changed(run: RunDir, manifest: Manifest) -> None:
    """Write the manifest unless the one on disk says the same (a rerun leaves files untouched)."""
    if run.manifest.is_file():
        try:
            old = Manifest.model_validate_json(run.manifest.read_text())
        except ValueError:
            old = None
        if old is not None and old.model_dump(exclude={"provenance"}) == manifest.model_dump(
            exclude={"provenance"}
        ):
            return
    manifest.save(run)


def _remove_stale(run: RunDir, names: set[str]) -> None:
    """Token files of domains no longer among the candidates would only mislead; remove them."""
    for stamp in (run.data / ".stamps").glob("*.json"):
        name = stamp.stem
        if name.startswith("_") or name in names:
            continue
        shutil.rmtree(run.data / name, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stamp)
