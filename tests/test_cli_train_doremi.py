"""``demix train doremi``: a DoReMi proxy from the command line against the run's one reference
trained on the token prior (or ``--reference``), and ``train.doremi.weights`` checked by name at
config time."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from demix.config import dump_config
from demix.errors import ConfigError, DemixError
from demix.run import RunDir
from tests.conftest import TINY_CONFIG, copy_run, tiny_config

# 1024 tokens a step: the reference and the proxy 4 steps each, no evaluation between first and last.
SHORT = ("train.eval_every=1000", "train.eval_tokens=2K")


def _main(args: list[str]) -> int:
    from demix.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    return int(e.value.code or 0)


def _fake_reference(run: RunDir, name: str, mixture: dict[str, float]) -> Path:
    """A finished reference as prior_references reads it: a summary and a weights file."""
    d = run.reference(name)
    d.mkdir(parents=True)
    (d / "train_summary.json").write_text(json.dumps({"kind": "reference", "mixture": mixture}))
    (d / "model.safetensors").write_bytes(b"")
    return d


def test_doremi_weights_name_only_candidates(capsys: pytest.CaptureFixture[str]) -> None:
    from demix.config import load_config

    with pytest.raises(ConfigError, match=re.escape("train.doremi.weights.poetry: not a candidate (prose,")):
        load_config(TINY_CONFIG, ["train.doremi.weights={prose: 1, poetry: 2}"])
    assert load_config(TINY_CONFIG, ["train.doremi.weights={prose: 1, code: 2}"]).train.doremi.weights
    assert _main(["config", "validate", str(TINY_CONFIG), "--set", "train.doremi.weights={verse: 1}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {TINY_CONFIG}: ") and "train.doremi.weights.verse: not a candidate" in err


def test_the_default_reference_is_the_one_trained_on_the_prior(prepared_run: RunDir, tmp_path: Path) -> None:
    from demix.data import Manifest
    from demix.train.prior import default_reference, prior_references, token_prior

    run = copy_run(prepared_run, tmp_path / "run", parts=("data",))
    cfg = tiny_config(run.root)
    m = Manifest.load(run)
    prior = dict(zip(m.names, map(float, token_prior(cfg, run, m)), strict=True))
    assert sum(prior.values()) == pytest.approx(1.0)
    with pytest.raises(
        DemixError,
        match=r"--reference: no reference model given .*`demix train reference RUN --mixture prose=",
    ):
        default_reference(cfg, run, m)
    _fake_reference(run, "uniform", {n: 0.2 for n in m.names})
    one = _fake_reference(run, "prior-a", prior)
    assert prior_references(cfg, run, m) == [one] and default_reference(cfg, run, m) == one
    _fake_reference(run, "prior-b", {n: 3 * v for n, v in prior.items()})  # unnormalised: the same mixture
    with pytest.raises(DemixError, match=r"2 references .* \(prior-a, prior-b\); say which with --reference"):
        default_reference(cfg, run, m)


@pytest.fixture(scope="module")
def doremi_cli_run(trained_run: RunDir, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    run = copy_run(trained_run, tmp_path_factory.mktemp("dcli") / "run", parts=("data", "models/base"))
    run.config.write_text(dump_config(tiny_config(run.root, *SHORT)))
    return run


def test_cli_trains_a_proxy_against_the_prior_reference(
    doremi_cli_run: RunDir, capsys: pytest.CaptureFixture[str]
) -> None:
    from demix.data import Manifest
    from demix.train import doremi_weights, read_summary
    from demix.train.prior import token_prior

    run = doremi_cli_run
    assert _main(["train", "doremi", str(run.root), "--tokens", "4K", "-q"]) == 2  # no reference yet
    assert "--reference: no reference model given" in capsys.readouterr().err
    m = Manifest.load(run)
    prior = ",".join(
        f"{n}={float(v)!r}" for n, v in zip(m.names, token_prior(tiny_config(run.root), run, m), strict=True)
    )
    assert (
        _main(
            ["train", "reference", str(run.root), "--mixture", prior, "--id", "prior", "--tokens", "4K", "-q"]
        )
        == 0
    )
    capsys.readouterr()
    assert _main(["train", "doremi", str(run.root), "--tokens", "4K", "-q"]) == 0
    out = capsys.readouterr().out
    proxy = run.models / "doremi"
    averaged = doremi_weights(proxy)
    assert averaged is not None and sum(averaged.values()) == pytest.approx(1.0)
    assert f"doremi proxy: {proxy}" in out and f"reference:        {run.reference('prior')}" in out
    assert f"{proxy / 'domain_weights.jsonl'}" in out and f"{proxy / 'train_summary.json'}" in out
    assert " ".join(f"{d}={w:.4f}" for d, w in averaged.items()) in out
    rows = (proxy / "domain_weights.jsonl").read_text().splitlines()
    assert len(rows) == 4  # a weight update per step
    summary = read_summary(proxy) or {}
    assert summary["kind"] == "doremi" and summary["tokens"] == 4096
    assert summary["mixture"] == pytest.approx(read_summary(run.reference("prior"))["mixture"])  # type: ignore[index]
    # the same again is done already: skipped, same weights
    assert _main(["train", "doremi", str(run.root), "--tokens", "4K", "-q"]) == 0
    assert doremi_weights(proxy) == averaged


def test_cli_options_and_errors(
    doremi_cli_run: RunDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = doremi_cli_run
    args = ["train", "doremi", str(run.root), "--tokens", "2K", "-q"]
    assert _main([*args, "--mixture", "poetry=1"]) == 2
    assert "--mixture" in capsys.readouterr().err
    assert _main([*args, "--tokens", "lots"]) == 2
    assert "--tokens" in capsys.readouterr().err
    assert _main([*args, "--reference", str(tmp_path / "nowhere")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    # an explicit reference (the base itself), mixture and output directory
    out = tmp_path / "proxy"
    base = str(run.base)
    assert _main([*args, "--reference", base, "--mixture", "prose=1,code=1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"doremi proxy: {out}" in printed and f"reference:        {base}" in printed
    assert set(json.loads((out / "train_summary.json").read_text())["domain_weights"]["averaged"]) == {
        "prose",
        "code",
    }
