"""The deterministic mixture sampler, on hand-made token files whose domain each token reveals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from demix.data import DomainInfo, Manifest, MixtureSampler
from demix.errors import DemixError
from demix.run import RunDir

NAMES = ("a", "b", "c")
SIZES = {"a": 5000, "b": 3000, "c": 80}


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[RunDir, Manifest]:
    """Domain k's tokens are all in [1000k, 1000k + 999], so a row's domain is row // 1000."""
    run = RunDir(tmp_path)
    domains = []
    for k, name in enumerate(NAMES):
        (run.data / name).mkdir(parents=True)
        toks = (1000 * k + np.arange(SIZES[name]) % 1000).astype(np.uint16)
        toks.tofile(run.data / name / "train.bin")
        toks[:100].tofile(run.data / name / "val.bin")
        (run.data / name / "val.jsonl").write_text('{"text": "x"}\n')
        domains.append(
            DomainInfo(
                name=name,
                sources=[f"synthetic:{name}"],
                train_docs=1,
                val_docs=1,
                train_tokens=SIZES[name],
                val_tokens=100,
                train_bytes=SIZES[name],
                val_bytes=100,
                train_path=f"{name}/train.bin",
                val_path=f"{name}/val.bin",
                val_text_path=f"{name}/val.jsonl",
                content_hash=name,
            )
        )
    m = Manifest(general="a", dtype="uint16", vocab_size=3000, eos_id=0, tokenizer_hash="t", domains=domains)
    m.save(run)
    return run, Manifest.load(run)


def _domains(batch: torch.Tensor) -> np.ndarray:
    return (batch[:, 0] // 1000).numpy()


def test_batches_are_a_pure_function_of_seed_index_rank(synthetic: tuple[RunDir, Manifest]) -> None:
    run, m = synthetic
    s = MixtureSampler(run, m, {"a": 0.5, "b": 0.5}, seq_len=16, seed=3)
    b = s.batch(7, 8)
    assert b.shape == (8, 17) and b.dtype == torch.int64
    assert torch.equal(b, MixtureSampler(run, m, [0.5, 0.5, 0.0], seq_len=16, seed=3).batch(7, 8))
    assert not torch.equal(b, s.batch(8, 8))
    assert not torch.equal(b, s.batch(7, 8, rank=1))
    assert not torch.equal(b, MixtureSampler(run, m, {"a": 0.5, "b": 0.5}, seq_len=16, seed=4).batch(7, 8))
    # Rows are contiguous windows of one domain's tokens.
    diffs = torch.diff(b, dim=1)
    assert bool(((diffs == 1) | (diffs == -999)).all())


def test_rows_follow_the_ratios(synthetic: tuple[RunDir, Manifest]) -> None:
    run, m = synthetic
    s = MixtureSampler(run, m, {"a": 3, "b": 1}, seq_len=8, seed=0)  # normalised to 0.75 / 0.25
    doms = np.concatenate([_domains(s.batch(i, 64)) for i in range(40)])
    share = np.bincount(doms, minlength=3) / len(doms)
    assert abs(share[0] - 0.75) < 0.03 and abs(share[1] - 0.25) < 0.03 and share[2] == 0


def test_bad_mixtures_are_user_errors(synthetic: tuple[RunDir, Manifest]) -> None:
    run, m = synthetic
    with pytest.raises(DemixError, match="unknown domain"):
        MixtureSampler(run, m, {"zzz": 1.0}, seq_len=8)
    with pytest.raises(DemixError, match="3 domains"):
        MixtureSampler(run, m, [0.5, 0.5], seq_len=8)
    with pytest.raises(DemixError, match=">= 0"):
        MixtureSampler(run, m, {"a": -1.0, "b": 2.0}, seq_len=8)
    with pytest.raises(DemixError, match="fewer than seq_len"):
        MixtureSampler(run, m, {"c": 1.0}, seq_len=128)


def test_sampler_on_the_prepared_run(prepared_run: RunDir) -> None:
    m = Manifest.load(prepared_run)
    s = MixtureSampler(prepared_run, m, m.token_counts(), seq_len=32, seed=0)
    b = s.batch(0, 4)
    assert b.shape == (4, 33) and int(b.max()) < m.vocab_size
