"""`prepare`: tokenizer, token files, held-out split, manifest, idempotence."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from demix.config import CorporaConfig, ExperimentConfig, load_config
from demix.corpora import minhash, near_duplicate_signatures
from demix.data import Manifest, load_tokenizer, prepare
from demix.data.pack import token_dtype
from demix.data.split import held_out_size, split_documents
from demix.errors import DataError, StageError
from demix.run import RunDir
from tests.conftest import TINY_CONFIG, copy_run


def _docs(tokens: np.ndarray, eos: int) -> list[np.ndarray]:
    cuts = np.flatnonzero(tokens == eos)
    assert len(cuts) and cuts[-1] == len(tokens) - 1  # every document ends with EOS
    return np.split(tokens, cuts + 1)[:-1]


def test_manifest_describes_the_token_files(prepared_run: RunDir, tiny_cfg: ExperimentConfig) -> None:
    m = Manifest.load(prepared_run)
    assert m.names == tiny_cfg.domains and m.general == tiny_cfg.general
    assert m.dtype == "uint16" and m.vocab_size == tiny_cfg.tokenizer.vocab_size
    assert m.groups() == {c.name: c.group for c in tiny_cfg.corpora.candidates}
    for d in m.domains:
        for split in ("train", "val"):
            toks = m.tokens(prepared_run, d.name, split)  # type: ignore[arg-type]
            assert len(toks) == getattr(d, f"{split}_tokens")
            assert len(_docs(np.asarray(toks), m.eos_id)) == getattr(d, f"{split}_docs")
            assert int(toks.max()) < m.vocab_size
        assert d.val_docs >= tiny_cfg.corpora.min_val_docs
        assert d.train_docs > d.val_docs
    assert m.token_counts().shape == (len(m.names),) and (m.token_counts() > 0).all()
    assert (prepared_run.root / "config.yaml").is_file()


def test_held_out_text_round_trips_and_is_not_near_duplicate(prepared_run: RunDir) -> None:
    m = Manifest.load(prepared_run)
    tok = load_tokenizer(prepared_run)
    assert tok.eos_token_id == m.eos_id and tok.bos_token_id is not None and tok.pad_token_id is not None
    assert tok.pad_token_id != tok.eos_token_id
    train: dict[str, list[str]] = {}
    for name in m.names:
        docs = _docs(np.asarray(m.tokens(prepared_run, name, "train")), m.eos_id)
        train[name] = tok.batch_decode([d[:-1].tolist() for d in docs])
    train_sigs = [minhash(docs) for docs in train.values()]
    for name in m.names:
        texts = m.val_texts(prepared_run, name)
        val = _docs(np.asarray(m.tokens(prepared_run, name, "val")), m.eos_id)
        assert [tok.decode(d[:-1].tolist()) for d in val] == texts  # byte-level BPE is lossless
        # Not a near-duplicate of any training document, of this domain or another one.
        flags = near_duplicate_signatures(minhash(texts), train_sigs, threshold=0.8, check_within=False)
        assert not flags.any()


def test_held_out_excludes_documents_shared_across_domains(prepared_run: RunDir, tmp_path: Path) -> None:
    import random

    cfg = _local_config(tmp_path, prepared_run.tokenizer, n=60)
    cfg.corpora.val_fraction = 0.25
    cfg.corpora.min_val_docs = 3
    r = random.Random(0)
    shared = [" ".join(f"w{r.randrange(10**6)}" for _ in range(40)) for _ in range(20)]
    for name in ("alpha", "beta"):
        with open(tmp_path / f"{name}.jsonl", "a") as f:
            f.writelines(json.dumps({"text": t}) + "\n" for t in shared)
    run = RunDir.for_config(cfg)
    m = prepare(cfg, run, progress=False)
    tok = load_tokenizer(run)
    train = {
        n: {tok.decode(d[:-1].tolist()) for d in _docs(np.asarray(m.tokens(run, n)), m.eos_id)}
        for n in ("alpha", "beta")
    }
    dropped = 0
    for name, other in (("alpha", "beta"), ("beta", "alpha")):
        assert m.domain(name).val_docs >= 3
        assert not set(m.val_texts(run, name)) & train[other]
        stamp = json.loads((run.data / ".stamps" / f"{name}.json").read_text())
        dropped += stamp["val"]["near_duplicates_across_domains"]
    assert dropped > 0


def test_rerun_does_nothing_and_a_group_change_rebuilds_nothing(prepared_run: RunDir, tmp_path: Path) -> None:
    run = copy_run(prepared_run, tmp_path / "run")
    cfg = load_config(TINY_CONFIG, [f"run_dir={run.root}"])
    files = [*sorted(run.data.rglob("*.bin")), run.manifest]
    before = {p: p.stat().st_mtime_ns for p in files}
    t0 = time.perf_counter()
    prepare(cfg, run, progress=False)
    assert time.perf_counter() - t0 < 10  # nothing loaded, tokenised or written
    assert {p: p.stat().st_mtime_ns for p in files} == before
    cfg.corpora.candidates[1].group = "other"
    m = prepare(cfg, run, progress=False)
    assert m.domain(cfg.domains[1]).group == "other"
    assert {p: p.stat().st_mtime_ns for p in files if p.suffix == ".bin"} == {
        p: t for p, t in before.items() if p.suffix == ".bin"
    }


def _local_config(tmp_path: Path, tokenizer_dir: Path, n: int = 60) -> ExperimentConfig:
    for name, word in (("alpha", "apple"), ("beta", "banana")):
        rows = [
            {"text": f"{word} {i} " + " ".join(f"{word}{j * i % 97}" for j in range(40))} for i in range(n)
        ]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "name": "local",
        "run_dir": str(tmp_path / "run"),
        "corpora": {
            "general": "alpha",
            "min_val_docs": 5,
            "candidates": [
                {"name": "alpha", "sources": [{"path": str(tmp_path / "alpha.jsonl")}]},
                {"name": "beta", "sources": [{"path": str(tmp_path / "beta.jsonl")}]},
            ],
        },
        "tokenizer": {"kind": "pretrained", "name_or_path": str(tokenizer_dir)},
    }
    from demix.config import config_from_dict

    return config_from_dict(data)


def test_a_changed_source_redoes_only_its_domain(prepared_run: RunDir, tmp_path: Path) -> None:
    cfg = _local_config(tmp_path, prepared_run.tokenizer)
    run = RunDir.for_config(cfg)
    m1 = prepare(cfg, run, progress=False)
    assert m1.names == ["alpha", "beta"] and m1.vocab_size == 1024
    alpha_bin, beta_bin = run.data / "alpha" / "train.bin", run.data / "beta" / "train.bin"
    alpha_t, beta_t = alpha_bin.stat().st_mtime_ns, beta_bin.stat().st_mtime_ns
    with open(tmp_path / "beta.jsonl", "a") as f:
        f.write(json.dumps({"text": "a brand new banana document " * 5}) + "\n")
    m2 = prepare(cfg, run, progress=False)
    assert alpha_bin.stat().st_mtime_ns == alpha_t and beta_bin.stat().st_mtime_ns != beta_t
    assert m2.domain("beta").train_docs + m2.domain("beta").val_docs == 61
    assert m2.domain("beta").content_hash != m1.domain("beta").content_hash
    assert m2.domain("alpha") == m1.domain("alpha")


def test_a_broken_source_leaves_the_prepared_data_alone(prepared_run: RunDir, tmp_path: Path) -> None:
    cfg = _local_config(tmp_path, prepared_run.tokenizer)
    run = RunDir.for_config(cfg)
    m1 = prepare(cfg, run, progress=False)
    with open(tmp_path / "beta.jsonl", "a") as f:
        f.write('{"text": "unterminated\n')
    with pytest.raises(DataError, match=r"corpora\.candidates\[beta\]\.sources\[0\]\.path: cannot read"):
        prepare(cfg, run, progress=False)
    assert Manifest.load(run) == m1


def test_missing_source_is_a_data_error(prepared_run: RunDir, tmp_path: Path) -> None:
    cfg = _local_config(tmp_path, prepared_run.tokenizer)
    (tmp_path / "beta.jsonl").unlink()
    with pytest.raises(DataError, match=r"corpora\.candidates\[beta\]\.sources\[0\]\.path: no such file"):
        prepare(cfg, RunDir.for_config(cfg), progress=False)


def test_literal_eos_text_is_not_a_boundary(prepared_run: RunDir, tmp_path: Path) -> None:
    cfg = _local_config(tmp_path, prepared_run.tokenizer)
    with open(tmp_path / "alpha.jsonl", "a") as f:
        for _ in range(3):
            f.write(json.dumps({"text": "before <|endoftext|> after"}) + "\n")
    run = RunDir.for_config(cfg)
    m = prepare(cfg, run, progress=False)
    d = m.domain("alpha")
    eos = np.asarray(m.tokens(run, "alpha")) == m.eos_id
    assert eos.sum() == d.train_docs


def test_load_tokenizer_before_prepare(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="demix prepare"):
        load_tokenizer(RunDir(tmp_path))


def test_token_dtype() -> None:
    assert token_dtype(1024) == "uint16" and token_dtype(65536) == "uint16"
    assert token_dtype(65537) == "uint32" and token_dtype(151_936) == "uint32"


def test_held_out_size_rules() -> None:
    c = CorporaConfig(val_fraction=0.1, val_max_docs=50, min_val_docs=20)
    assert held_out_size(100, c) == 20  # at least min_val_docs
    assert held_out_size(300, c) == 30
    assert held_out_size(10_000, c) == 50  # at most val_max_docs


def test_split_keeps_duplicates_out_of_held_out() -> None:
    unique = [f"document {i} " + " ".join(f"w{(i * 31 + j) % 1009}" for j in range(30)) for i in range(200)]
    dup = "this exact paragraph is copied into the corpus many many times over and over"
    texts = unique + [dup] * 100
    c = CorporaConfig(val_fraction=0.1, val_max_docs=40, min_val_docs=10)
    s = split_documents(texts, "d", c)
    assert len(s.val) == 30 and s.near_duplicates > 0
    assert all(texts[i] != dup for i in s.val)
    assert sorted(np.concatenate([s.train, s.val]).tolist()) == list(range(300))
    assert split_documents(texts, "d", c).val.tolist() == s.val.tolist()  # seeded
    with pytest.raises(DataError, match="too few to hold out"):
        split_documents(unique[:15], "small", c)


def test_tokenize_with_worker_processes_matches_one_process(
    prepared_run: RunDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    from demix.data import pack

    tok = load_tokenizer(prepared_run)
    ds = datasets.Dataset.from_dict({"text": [f"document {i}: " + "word " * (i % 17) for i in range(60)]})
    one = pack.tokenize(ds, tok, tok.eos_token_id, num_proc=1, fingerprint=None, desc=None)
    monkeypatch.setattr(pack, "PARALLEL_MIN_DOCS", 10)
    two = pack.tokenize(ds, tok, tok.eos_token_id, num_proc=2, fingerprint=None, desc=None)
    assert one["ids"] == two["ids"] and one["n_bytes"] == two["n_bytes"]
    assert all(ids[-1] == tok.eos_token_id for ids in one["ids"])
