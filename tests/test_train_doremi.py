"""DoReMi in the trainer: the update by hand, a tiny 3-domain proxy whose worst domain gains weight,
and a resumed proxy that ends where an uninterrupted one ends."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from demix.errors import ConfigError
from demix.run import RunDir
from demix.train.doremi import DoReMiState, exponentiated_gradient, step_token_weights
from tests.conftest import copy_run, tiny_config

# A short proxy: 1024 tokens a step, 12 steps, no evaluation between the first and the last.
PROXY = ("train.reference_tokens=12K", "train.eval_every=1000", "train.eval_tokens=2K")
THREE = ("prose", "code", "math")  # the proxy's domains: a third each; comments and tables not drawn


def test_update_step_by_hand() -> None:
    # α = (0.5, 0.3, 0.2), λ = (0, ln 2, ln 3), η = 1: α ⊙ exp(λ) = (0.5, 0.6, 0.6), sum 1.7,
    # normalised (5/17, 6/17, 6/17); ε = 0.1 mixes in 0.1 · 1/3.
    got = exponentiated_gradient(np.array([0.5, 0.3, 0.2]), np.log([1.0, 2.0, 3.0]), 1.0, 0.1)
    want = [0.9 * 5 / 17 + 0.1 / 3, 0.9 * 6 / 17 + 0.1 / 3, 0.9 * 6 / 17 + 0.1 / 3]
    assert got == pytest.approx(want, abs=1e-12)
    assert got == pytest.approx([0.298039215686, 0.350980392157, 0.350980392157], abs=1e-11)
    # η scales the step: η = 0.5 with λ = (0, 2 ln 2, 2 ln 3) is the same update
    half = exponentiated_gradient(np.array([0.5, 0.3, 0.2]), 2 * np.log([1.0, 2.0, 3.0]), 0.5, 0.1)
    assert half == pytest.approx(got, abs=1e-12)


def test_state_windows_keeps_absent_domains_and_averages() -> None:
    s = DoReMiState.start(np.array([2.0, 1.0, 1.0]), eta=1.0, epsilon=0.0, update_every=2)
    assert s.weights.tolist() == [0.5, 0.25, 0.25]
    assert not s.end_step(np.array([0.0, 64 * math.log(2), 0.0]), np.array([64, 64, 0]))
    assert s.weights.tolist() == [0.5, 0.25, 0.25]  # no update before update_every steps
    assert s.end_step(np.array([0.0, 64 * math.log(2), 0.0]), np.array([0, 64, 0]))
    # λ over the window: domain 0 mean 0 over 64 tokens, domain 1 ln 2 over 128, domain 2 never
    # drawn keeps its previous λ (0): α ∝ (0.5, 0.25·2, 0.25) = (0.4, 0.4, 0.2)
    assert s.excess == pytest.approx([0.0, math.log(2), 0.0])
    assert s.weights == pytest.approx([0.4, 0.4, 0.2])
    assert s.averaged == pytest.approx([(0.5 + 0.4) / 2, (0.25 + 0.4) / 2, (0.25 + 0.2) / 2])
    again = DoReMiState.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again.to_dict() == s.to_dict()


def test_step_loss_is_the_weighted_mean_of_domain_means() -> None:
    w = step_token_weights(np.array([0.5, 0.3, 0.2]), np.array([128.0, 64.0, 0.0]))
    # per token α_i / n_i / Σ_present α: domain 2 drew nothing, 0.5 + 0.3 renormalised
    assert w == pytest.approx([0.5 / 128 / 0.8, 0.3 / 64 / 0.8, 0.0])
    losses = np.array([2.0, 4.0, 9.0])  # a constant per-token loss per domain
    assert float((w * np.array([128, 64, 0]) * losses).sum()) == pytest.approx((0.5 * 2 + 0.3 * 4) / 0.8)


def test_doremi_needs_a_reference(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.doremi\.reference"):
        tiny_config(tmp_path, "train.domain_weights=doremi")


def _rows(out: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (out / "domain_weights.jsonl").read_text().splitlines()]


def _three(run: RunDir) -> np.ndarray:
    from demix.data import Manifest

    return np.array([1.0 if n in THREE else 0.0 for n in Manifest.load(run).names])


@pytest.fixture
def doremi_run(trained_run: RunDir, tmp_path: Path) -> RunDir:
    return copy_run(trained_run, tmp_path / "run", parts=("data", "models/base", "models/components/code"))


def test_proxy_upweights_the_domain_with_the_largest_excess_loss(doremi_run: RunDir) -> None:
    """Reference = the code component (base + code data); proxy = from the base, uniform data. The
    base has never seen code, so code's excess loss is the largest by far and its weight rises."""
    from demix.data import Manifest
    from demix.train import doremi_weights, train_doremi
    from demix.train.jobs import base_job

    run = doremi_run
    cfg = tiny_config(run.root, *PROXY)
    manifest = Manifest.load(run)
    assert "domain_weights" not in base_job(cfg, run, manifest).spec  # static jobs: the same spec
    ref = run.component("code")
    out = train_doremi(cfg, run, ref, run.models / "doremi", ratios=_three(run), progress=False)

    rows = _rows(out)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert set(rows[0]["weights"]) == set(THREE)
    mean_excess = {d: np.mean([r["excess"][d] for r in rows if r["excess"][d] is not None]) for d in THREE}
    assert max(mean_excess, key=mean_excess.__getitem__) == "code"
    summary = json.loads((out / "train_summary.json").read_text())
    dw = summary["domain_weights"]
    assert dw["start"] == pytest.approx({d: 1 / 3 for d in THREE})
    assert dw["final"]["code"] > dw["averaged"]["code"] > 1 / 3
    assert max(dw["averaged"], key=dw["averaged"].__getitem__) == "code"
    assert sum(dw["averaged"].values()) == pytest.approx(1.0)
    assert doremi_weights(out) == dw["averaged"]
    assert summary["kind"] == "doremi" and summary["spec"]["domain_weights"]["method"] == "doremi"
    # done: the same call is skipped
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    train_doremi(cfg, run, ref, out, ratios=_three(run), progress=False)
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime


def test_resumed_proxy_ends_where_an_uninterrupted_one_ends(doremi_run: RunDir, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from demix.train import train_doremi

    run = doremi_run
    settings = (*PROXY, "train.reference_tokens=8K", "train.checkpoint_every=4", "train.keep_checkpoint=true")
    cfg = tiny_config(run.root, *settings, "train.doremi.eta=5", "train.doremi.update_every=3")
    ref = run.component("code")
    whole = train_doremi(cfg, run, ref, tmp_path / "whole", ratios=_three(run), progress=False)

    # The kept checkpoint is step 4 of 8: drop the finished results and train again from it.
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for f in ("model.safetensors", "train_summary.json"):
        (cut / f).unlink()
    assert json.loads((cut / "checkpoint" / "state.json").read_text())["schedule"]["steps"] == 4
    train_doremi(cfg, run, ref, cut, ratios=_three(run), progress=False)

    assert _rows(cut) == _rows(whole) and [r["step"] for r in _rows(cut)] == list(range(1, 9))
    a, b = (json.loads((d / "train_summary.json").read_text())["domain_weights"] for d in (whole, cut))
    assert a["averaged"] == b["averaged"] and a["updates"] == b["updates"] == 2
    wa, wb = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
    assert all(bool((wa[k] == wb[k]).all()) for k in wa)


def test_config_turns_doremi_on_for_any_job_with_two_domains(doremi_run: RunDir) -> None:
    """``train.domain_weights: doremi``: a component tunes (its domain, general) online; the base,
    one domain, stays the static job it was (same spec, so it is not retrained)."""
    from demix.data import Manifest
    from demix.train import read_summary, train_components
    from demix.train.jobs import base_job

    run = doremi_run
    ref = run.component("code")
    doremi = ("train.domain_weights=doremi", f"train.doremi.reference={ref}")
    cfg = tiny_config(run.root, *PROXY, "train.component_tokens=4K", *doremi)
    static = tiny_config(run.root, *PROXY)
    manifest = Manifest.load(run)
    assert base_job(cfg, run, manifest).inputs_hash == base_job(static, run, manifest).inputs_hash
    train_components(cfg, run, ["math"], progress=False)
    dw = (read_summary(run.component("math")) or {})["domain_weights"]
    assert set(dw["averaged"]) == {"prose", "math"} and dw["updates"] == 4
    assert [r["step"] for r in _rows(run.component("math"))] == [1, 2, 3, 4]
