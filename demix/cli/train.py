"""``demix train base|components|reference|doremi``: the trainer's four uses.

Under ``torchrun --nproc_per_node N -m demix train ...`` every command trains with DDP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, load, parse_tokens

if TYPE_CHECKING:
    import numpy as np

    from demix.config import ExperimentConfig
    from demix.data import Manifest
    from demix.run import RunDir

train_app = typer.Typer(
    help="Train the base model, the components, a reference model or a DoReMi proxy (resumes; skips "
    "what is done).",
    no_args_is_help=True,
)

FreshOpt = Annotated[
    bool, typer.Option("--fresh", help="Discard a resumable checkpoint and start the training over.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
TokensOpt = Annotated[
    str | None, typer.Option("--tokens", help="Token budget, e.g. 1M (default: train.reference_tokens).")
]


def _echo(msg: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # one line per job under torchrun, not one per process
        typer.echo(msg)


def _describe(path: object) -> str:
    from demix.train import read_summary

    s = read_summary(Path(str(path))) or {}
    ev = (s.get("final_eval") or {}).get("loss") or {}
    losses = " ".join(f"{d}={v:.3f}" for d, v in ev.items())
    return (
        f"{path}  ({s.get('steps', '?')} steps, {s.get('train_seconds', 0):.0f}s, "
        f"{s.get('tokens_per_s', 0):,.0f} tok/s, MFU {s.get('mfu', 0):.1%})  held-out loss: {losses}"
    )


@train_app.command("base")
def base_cmd(
    config: ConfigArg,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    fresh: FreshOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the base model from scratch on the general data (train.base_tokens)."""
    cfg, run = load(config, set_, run_dir, stages=())
    from demix.train import train_base

    path = train_base(cfg, run, progress=not quiet, fresh=fresh)
    _echo(f"base: {_describe(path)}")


@train_app.command("components")
def components_cmd(
    config: ConfigArg,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    domain: Annotated[
        list[str] | None, typer.Option("--domain", help="Train only this component (repeatable).")
    ] = None,
    parallel: Annotated[
        bool, typer.Option("--parallel", help="One component per GPU at once (sequential on CPU).")
    ] = False,
    fresh: FreshOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Continue from the base on (1-β)·candidate + β·general, one component per candidate."""
    cfg, run = load(config, set_, run_dir, stages=())
    from demix.train import train_components

    paths = train_components(cfg, run, domain or None, progress=not quiet, fresh=fresh, parallel=parallel)
    for d, p in paths.items():
        _echo(f"{d}: {_describe(p)}")


def _with_budget(
    config: Path, set_: list[str] | None, run_dir: Path | None, tokens: str | None
) -> tuple[ExperimentConfig, RunDir, Manifest]:
    """The config with ``--tokens`` as ``train.reference_tokens``, its run and the run's manifest."""
    from demix.data import Manifest

    budget = parse_tokens(tokens)
    cfg, run = load(config, set_, run_dir, flags={"train.reference_tokens": budget}, stages=())
    return cfg, run, Manifest.load(run)


def _ratios(mixture: str, manifest: Manifest) -> np.ndarray:
    """``--mixture name=value,...`` as ratios over the run's domains, normalised."""
    from demix.mixture import parse_weights

    return parse_weights(mixture, manifest.names, normalize=True, what="--mixture")


@train_app.command("reference")
def reference_cmd(
    config: ConfigArg,
    mixture: Annotated[
        str, typer.Option("--mixture", help="Data ratios name=value,... (normalised to sum 1).")
    ],
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    ref_id: Annotated[
        str | None, typer.Option("--id", help="Name under models/references/ (default: from the mixture).")
    ] = None,
    tokens: TokensOpt = None,
    fresh: FreshOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Continue from the base on any data mixture (a reference model, as validation trains)."""
    cfg, run, manifest = _with_budget(config, set_, run_dir, tokens)
    from demix.train import train_reference
    from demix.util.hashing import hash_json

    ratios = _ratios(mixture, manifest)
    rid = ref_id or "mix-" + hash_json([round(float(r), 6) for r in ratios])[:10]
    path = train_reference(cfg, run, ratios, rid, progress=not quiet, fresh=fresh)
    _echo(f"reference {rid}: {_describe(path)}")


@train_app.command("doremi")
def doremi_cmd(
    config: ConfigArg,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="The reference model's checkpoint directory (default: train.doremi.reference, else "
            "the one reference under models/references/ trained on the token prior).",
        ),
    ] = None,
    mixture: Annotated[
        str | None,
        typer.Option(
            "--mixture", help="Data ratios the proxy draws, name=value,... (default: the token prior)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="The proxy's directory (default: models/doremi in the run).")
    ] = None,
    tokens: TokensOpt = None,
    fresh: FreshOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Continue from the base with group DRO against a reference model (a DoReMi proxy); its
    averaged domain weights are DoReMi's data mixture."""
    cfg, run, manifest = _with_budget(config, set_, run_dir, tokens)
    from demix.train import doremi_weights, train_doremi
    from demix.train.prior import default_reference, token_prior

    ratios = _ratios(mixture, manifest) if mixture is not None else token_prior(cfg, run, manifest)
    ref = reference or cfg.train.doremi.reference or default_reference(cfg, run, manifest)
    path = train_doremi(cfg, run, ref, out, ratios=ratios, progress=not quiet, fresh=fresh)
    averaged = doremi_weights(path) or {}
    _echo(f"doremi proxy: {_describe(path)}")
    _echo(f"  reference:        {ref}")
    _echo(f"  averaged weights: {' '.join(f'{d}={w:.4f}' for d, w in averaged.items())}")
    _echo(f"  summary:          {path / 'train_summary.json'} (domain_weights.averaged)")
    _echo(f"  weights per step: {path / 'domain_weights.jsonl'}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
