"""The trainer: schedule, model construction, FLOP count, and the tiny run's base + components."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from demix.config import ModelConfig
from demix.errors import DemixError, StageError
from demix.run import RunDir
from demix.train import build_model, heldout_loss, lr_at, model_shape, read_summary, window_starts
from demix.train.checkpoint import spec_diff
from demix.train.schedule import warmup_steps_for
from tests.conftest import copy_run, tiny_config


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models: one thread (as tiny.yaml trains) is far faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    total, peak = 100, 1e-3
    warm = warmup_steps_for(total, 0.1)
    lrs = [lr_at(s, total, peak, warmup_steps=warm, min_ratio=0.2) for s in range(total)]
    assert warm == 10
    assert lrs[0] == pytest.approx(peak / 10) and lrs[9] == pytest.approx(peak)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))  # cosine never rises
    assert lrs[-1] == pytest.approx(0.2 * peak)
    assert lr_at(0, 1, peak, warmup_steps=0, min_ratio=0.2) == pytest.approx(peak)


def test_build_model_is_seeded_tied_and_padded() -> None:
    cfg = ModelConfig(
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_vocab_multiple=64,
    )
    a, b, c = build_model(cfg, 1000, seed=1), build_model(cfg, 1000, seed=1), build_model(cfg, 1000, seed=2)
    assert type(a).__name__ == "Qwen3ForCausalLM"
    assert a.config.vocab_size == 1024  # padded up to a multiple of 64
    assert a.get_input_embeddings().weight is a.get_output_embeddings().weight
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.model.layers[0].mlp.up_proj.weight, c.model.layers[0].mlp.up_proj.weight)
    llama = build_model(cfg.model_copy(update={"family": "llama", "tie_embeddings": False}), 1000, seed=0)
    assert type(llama).__name__ == "LlamaForCausalLM"
    assert llama.get_input_embeddings().weight is not llama.get_output_embeddings().weight


def test_flops_per_token_follows_palm() -> None:
    cfg = ModelConfig(
        hidden_size=64,
        num_layers=3,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
        pad_vocab_multiple=1,
    )
    shape = model_shape(build_model(cfg, 500))
    per_layer = 4 * 64 * 64 + 3 * 64 * 128 + 2 * 64 + 2 * 16  # q,k,v,o + mlp + 2 norms + q/k norms
    assert shape.params == 500 * 64 + 3 * per_layer + 64
    assert shape.non_embedding == 3 * per_layer + 64
    assert shape.flops_per_token(32) == 6 * shape.non_embedding + 12 * 3 * 4 * 16 * 32


def test_window_starts_cover_the_file_without_overlap() -> None:
    s = window_starts(1000, 64, 10_000)
    assert len(s) == (1000 - 1) // 64 and s[0] == 0 and np.all(np.diff(s) >= 64)
    assert s[-1] + 65 <= 1000
    assert len(window_starts(1000, 64, 128)) == 2
    with pytest.raises(DemixError, match="fewer than seq_len"):
        window_starts(50, 64, 128)


def test_parallel_assigns_components_round_robin() -> None:
    from demix.train.parallel import assign

    assert assign(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]
    assert assign(["a"], 4) == [["a"]]


def test_spec_diff_names_the_keys() -> None:
    assert spec_diff({"train": {"lr": 1, "b": 2}}, {"train": {"lr": 3, "b": 2}}) == ["train.lr: 1 -> 3"]


# ---- on the tiny run ------------------------------------------------------------------------------


def test_components_specialise_on_their_own_domain(trained_run: RunDir, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    """Each component has the lowest held-out loss on its own domain, by > 2 standard errors.

    Every model is scored on the same held-out windows, so the standard error is that of the paired
    per-window differences.
    """
    from transformers import AutoModelForCausalLM

    from demix.data import Manifest

    manifest = Manifest.load(trained_run)
    losses = {
        d: heldout_loss(
            AutoModelForCausalLM.from_pretrained(trained_run.component(d)),
            trained_run,
            manifest,
            seq_len=tiny_cfg.train.seq_len,
            max_tokens=tiny_cfg.train.eval_tokens,
        )
        for d in manifest.names
    }
    for d in manifest.names:
        own = losses[d][d].windows
        for other in manifest.names:
            if other == d:
                continue
            diff = losses[other][d].windows - own
            se = diff.std(ddof=1) / math.sqrt(diff.size)
            assert diff.mean() > 2 * se, f"on {d}: component {other} is within 2 SE of {d}'s own component"


def test_checkpoints_are_hf_models_with_logs(trained_run: RunDir, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from demix.data import Manifest

    manifest = Manifest.load(trained_run)
    path = trained_run.component(manifest.names[1])
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token_id == manifest.eos_id
    summary = read_summary(path)
    assert summary is not None and summary["kind"] == "component"
    assert summary["provenance"]["inputs"] and summary["init"] == str(trained_run.base)
    assert summary["mixture"][manifest.general] == pytest.approx(tiny_cfg.train.beta)
    rows = [json.loads(x) for x in (path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, summary["steps"] + 1))
    assert {"loss", "lr", "tokens", "tokens_per_s", "mfu"} <= set(rows[0])
    evals = [json.loads(x) for x in (path / "eval_log.jsonl").read_text().splitlines()]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == summary["steps"]
    assert set(evals[-1]["loss"]) == set(manifest.names)
    assert not (path / "checkpoint").exists()  # resumable state is dropped once finished
    # the loaded model reproduces the logged final held-out loss
    again = heldout_loss(
        model, trained_run, manifest, seq_len=tiny_cfg.train.seq_len, max_tokens=tiny_cfg.train.eval_tokens
    )
    d = manifest.names[1]
    assert again[d].mean == pytest.approx(evals[-1]["loss"][d], abs=1e-4)


def test_done_jobs_are_skipped_and_references_train(trained_run: RunDir, tmp_path: Path) -> None:
    from demix.data import Manifest
    from demix.train import train_base, train_components, train_reference

    run = copy_run(trained_run, tmp_path / "run")
    cfg = tiny_config(run.root, "train.reference_tokens=4K")
    done = [run.base / "model.safetensors", run.component("math") / "model.safetensors"]
    stamp = [p.stat().st_mtime_ns for p in done]
    train_base(cfg, run, progress=False)
    train_components(cfg, run, ["math"], progress=False, parallel=True)  # no GPUs: one after another
    assert [p.stat().st_mtime_ns for p in done] == stamp  # both were done: nothing retrained
    manifest = Manifest.load(run)
    r = np.full(len(manifest.names), 1.0 / len(manifest.names))
    out = train_reference(cfg, run, r, "uniform", progress=False)
    s = read_summary(out)
    assert s is not None and s["kind"] == "reference" and s["tokens"] >= 4000
    with pytest.raises(DemixError, match="unknown domain"):
        train_components(cfg, run, ["nope"], progress=False)
    # a base trained with other settings is refused, not silently used
    with pytest.raises(StageError, match="other settings"):
        train_components(tiny_config(run.root, "train.seed=5"), run, ["math"], progress=False)


def test_exploding_loss_stops_and_keeps_the_last_good_checkpoint(
    prepared_run: RunDir, tmp_path: Path
) -> None:
    from demix.train import train_base

    run = copy_run(prepared_run, tmp_path / "run", parts=("data",))
    cfg = tiny_config(
        run.root,
        "train.lr=300",
        "train.warmup_frac=0",
        "train.base_tokens=6K",
        "train.checkpoint_every=1",
        "train.eval_every=100",
    )
    with pytest.raises(DemixError, match=r"loss .* at step 2") as e:
        train_base(cfg, run, progress=False)
    assert "lower train.lr" in str(e.value)
    state = json.loads((run.base / "checkpoint" / "state.json").read_text())
    assert state["step"] == 1 and not (run.base / "model.safetensors").exists()
