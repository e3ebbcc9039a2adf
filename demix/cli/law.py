"""``demix law fit | predict | optimize | check``: the data-mixing law (Ye et al., ICLR 2025)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, load

if TYPE_CHECKING:
    from demix.config import ExperimentConfig, LawConfig
    from demix.law import MixingLaw

TargetsOpt = Annotated[
    str | None,
    typer.Option(
        "--targets", help="Comma-separated loss: columns to fit (default all), e.g. pile_cc,github."
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Experiment YAML or run directory for law settings and constraints."),
]


def _cfg(config: Path | None, overrides: list[str] | None) -> ExperimentConfig | None:
    return load(config, overrides, stages=("law",))[0] if config is not None else None


def _law_settings(cfg: ExperimentConfig | None, overrides: list[str] | None) -> LawConfig:
    """The ``law`` section: the config's, or, with no config, defaults with ``--set law.*``."""
    from pydantic import ValidationError

    from demix.config import LawConfig
    from demix.config.load import apply_overrides, format_validation_error
    from demix.errors import ConfigError

    if cfg is not None:
        return cfg.law
    data = apply_overrides({}, overrides or [])
    other = sorted(set(data) - {"law"})
    if other:
        raise ConfigError(f"--set {other[0]}.…: without --config only law.* keys apply")
    try:
        return LawConfig.model_validate(data.get("law") or {})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, ("law",))) from None


def _print_law(law: MixingLaw) -> None:
    from demix.law.mixing import exponent_note

    width = max(8, *(len(t) for t in law.targets))
    typer.echo(law.formula())
    note = exponent_note(law.exponent, law.info)
    if note:
        typer.echo(f"form: {note}")
    typer.echo(f"t_ij (rows: validation domain, columns: share of {', '.join(law.domains)}); negative helps")
    for i, t in enumerate(law.targets):
        cells = " ".join(f"{v:+8.3f}" for v in law.t[i])
        typer.echo(f"{t:<{width}} c={law.c[i]:.4f} k={law.k[i]:.4f}  {cells}")


def _rescaled_note(n: int) -> str:
    return (
        f"rescaled {n} row{'s' if n != 1 else ''} whose shares sum to 1 only within their written precision"
    )


law_app = typer.Typer(
    help="Fit, predict, optimise and cross-check the data-mixing law.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(law_app, name="law")


@law_app.command("fit")
def fit_cmd(
    source: Annotated[
        Path, typer.Argument(help="Measurement CSV (`mix:<d>`, `loss:<d>` columns), or a run directory.")
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Fit JSON (default: RUN/law/fit.json).")] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--loss-weights",
            help="JSON file {validation domain: weight}: how the overall loss weighs the domains.",
        ),
    ] = None,
    step: Annotated[float | None, typer.Option("--step", help="Target training steps (nested laws).")] = None,
    size: Annotated[
        str | None, typer.Option("--size", help="Target model size, e.g. 70M (nested laws).")
    ] = None,
    references: Annotated[
        bool,
        typer.Option(
            "--references", help="Fit a run's trained references (validation.json), not its trials."
        ),
    ] = False,
    targets: TargetsOpt = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the interaction matrix t_ij to this PNG.")
    ] = None,
) -> None:
    """Fit L_i(r) = c_i + k_i exp(sum_j t_ij r_j^p) per validation domain and write the fit JSON.

    Each p of law.exponents (default 1 and 0.5) is scored by cross-validation on the rows; by
    default (law.combine=ensemble) every form is fitted and their predictions averaged, weighted by
    inverse cross-validated error; law.combine=select keeps the best one;
    --set law.exponents=[1.0] fits the paper's law.

    A ``loss:overall`` column is the overall validation loss: without --loss-weights, the weights of
    the per-domain losses in it are learned from the rows (or, with no per-domain columns, the
    law is fitted to it directly), and `demix law predict` writes pred:aggregate.
    """
    import demix.law as law
    from demix.errors import DemixError
    from demix.util.units import parse_quantity

    if references and not source.is_dir():
        raise DemixError(f"--references needs a run directory, got {source}")
    table, run_root = law.resolve_input(source, references=references)
    if config is None and run_root is not None and (run_root / "config.yaml").is_file():
        config = run_root
    cfg = _cfg(config, overrides)
    lc = _law_settings(cfg, overrides)
    try:
        target_size = parse_quantity(size) if size is not None else None
    except ValueError:
        raise DemixError(f"--size {size!r}: not a size (e.g. 70M, 1.4B, 125000000)") from None
    dest = out if out is not None else (run_root / "law" / "fit.json" if run_root is not None else None)
    if dest is None:
        raise DemixError("--out is required when fitting a CSV (a run directory defaults to law/fit.json)")
    res = law.fit_and_save(
        table, dest, lc, cfg=cfg, run_root=run_root, references=references, weights=weights,
        target_step=step, target_size=target_size, targets=law.parse_targets(targets),
    )  # fmt: skip
    if res.rescaled:
        typer.echo(_rescaled_note(res.rescaled))
    if res.overall is not None:
        typer.echo(f"overall loss: {res.overall}")
    _print_law(res.law)
    typer.echo(
        f"fitted on {res.mixtures} mixtures, mean absolute fit error {res.fit_error:.4f}; wrote {res.path}"
    )
    if plot is not None:
        from demix.report.plots import interaction_matrix
        from demix.util.io import atomic_path

        png = interaction_matrix(res.law.t, res.law.targets, res.law.domains, _t_title(res.law))
        with atomic_path(plot) as tmp:
            tmp.write_bytes(png)
        typer.echo(f"wrote {plot}")


def _t_title(law: MixingLaw) -> str:
    form = "r_j" if law.exponent == 1.0 else f"r_j^{law.exponent:g}"
    of = (
        f" (the heaviest form of the ensemble, weight {max(w for w, _ in law.parts):.2f})"
        if law.parts
        else ""
    )
    return f"t_ij of exp(sum_j t_ij {form}){of}; negative: a larger share of j lowers the loss on i"


@law_app.command("compare")
def compare_cmd(
    source: Annotated[
        Path, typer.Argument(help="Measurement CSV (`mix:<d>`, `loss:<d>` columns) to fit on.")
    ],
    test: Annotated[
        Path | None,
        typer.Option(
            "--test", help="Evaluate on this CSV (e.g. the same mixtures at a larger size), not folds."
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option("--folds", min=2, help="Seeded folds (seed: law.seed) without --test.")
    ] = 5,
    targets: TargetsOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the table as JSON here.")] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
) -> None:
    """The law (each form r^p, the ensemble, the CV-selected form) beside LightGBM with RegMix's
    settings and linear regression, on the same folds: MAE and Spearman per target."""
    import demix.law as law
    from demix.util.hashing import hash_file, hash_json
    from demix.util.io import write_json_atomic
    from demix.util.provenance import provenance

    lc = _law_settings(_cfg(config, overrides), overrides)
    names = law.parse_targets(targets)
    train = law.read_table(source).select(names)
    test_table = law.read_table(test).select(names or train.targets) if test is not None else None
    doc = law.compare(train, lc, test=test_table, folds=folds)
    _print_comparison(doc)
    if out is not None:
        inputs = {"table": hash_file(source), "law": hash_json(lc.model_dump(mode="json"))}
        if test is not None:
            inputs["test"] = hash_file(test)
        write_json_atomic(out, doc | {"provenance": provenance(inputs)})
        typer.echo(f"wrote {out}")


def _print_comparison(doc: dict[str, Any]) -> None:
    """One table: a row per target and method, the best MAE and Spearman of each target in bold."""
    from rich.table import Table

    from demix.cli.common import console

    tab = Table(title=f"law compare: {doc['protocol']}")
    for col in ("target", "method", "MAE", "Spearman"):
        tab.add_column(col, justify="right" if col in ("MAE", "Spearman") else "left")
    for t in doc["targets"]:
        res = doc["results"][t]
        best_mae = min(r["mae"] for r in res.values())
        best_rho = max(r["spearman"] for r in res.values())
        for i, (m, r) in enumerate(res.items()):
            mae = f"{r['mae']:.4f}" if r["mae"] != best_mae else f"[bold]{r['mae']:.4f}[/bold]"
            rho = f"{r['spearman']:.3f}" if r["spearman"] != best_rho else f"[bold]{r['spearman']:.3f}[/bold]"
            tab.add_row(t if i == 0 else "", m, mae, rho, end_section=i == len(res) - 1)
    con = console()
    con.print(tab)
    secs = ", ".join(f"{k} {v:.2f} s" for k, v in doc["fit_seconds"].items())
    con.print(f"fit seconds, all folds and targets: {secs}")


@law_app.command("predict")
def predict_cmd(
    fit_json: Annotated[Path, typer.Argument(help="Fit JSON from `demix law fit` (or a run directory).")],
    mixtures: Annotated[Path, typer.Argument(help="CSV with `mix:<d>` columns for the law's domains.")],
    out: Annotated[Path, typer.Option("--out", help="Output CSV: the input rows plus pred: columns.")],
) -> None:
    """Predict per-domain losses (and the overall loss when weights are known) for mixtures."""
    import numpy as np

    import demix.law as law

    fitted = law.load_fit(fit_json)
    P, agg, rescaled = law.write_predictions(fitted, mixtures, out)
    if rescaled:
        typer.echo(_rescaled_note(rescaled))
    typer.echo(f"predicted {len(P)} mixtures x {len(fitted.targets)} domains -> {out}")
    if agg is not None:
        typer.echo(f"overall loss: min {np.min(agg):.4f}, max {np.max(agg):.4f}")


@law_app.command("optimize")
def optimize_cmd(
    fit_json: Annotated[Path, typer.Argument(help="Fit JSON from `demix law fit` (or a run directory).")],
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the optimum as JSON here.")] = None,
) -> None:
    """The mixture the law predicts is best, under the config's search constraints if given."""
    import numpy as np

    import demix.law as law
    from demix.mixture import as_dict, format_weights
    from demix.util.hashing import hash_file
    from demix.util.io import write_json_atomic
    from demix.util.provenance import provenance

    fitted = law.load_fit(fit_json)
    cfg = _cfg(config, overrides)
    if fitted.aggregate is None:
        fitted = fitted.with_aggregate(np.full(len(fitted.targets), 1.0 / len(fitted.targets)))
        typer.echo("no aggregation weights in the fit: using the mean over validation domains")
    bounds = law.bounds_for(cfg, fitted.domains) if cfg is not None else None
    lc = _law_settings(cfg, overrides)
    opt = law.optimize(fitted, bounds, starts=lc.optimize_starts, seed=lc.seed)
    typer.echo(f"law optimum r: {format_weights(opt.r, fitted.domains)}")
    typer.echo(f"predicted overall loss {opt.loss:.4f}")
    if out is not None:
        src = fit_json if fit_json.is_file() else fit_json / "law" / "fit.json"
        doc = {
            "r": as_dict(opt.r, fitted.domains),
            "predicted_loss": opt.loss,
            "predicted": as_dict(opt.per_domain, fitted.targets),
            "provenance": provenance({"fit": hash_file(src)}),
        }
        write_json_atomic(out, doc)
        typer.echo(f"wrote {out}")


@law_app.command("check")
def check_cmd(config: ConfigArg, overrides: SetOpt = None, run_dir: RunDirOpt = None) -> None:
    """Fit the law on part of the trials, predict the rest, compare its optimum with the search's."""
    import demix.law as law

    cfg, run = load(config, overrides, run_dir, stages=("law",))
    doc = law.check(cfg, run)
    typer.echo(doc["summary"])
    typer.echo(doc["verdict"])
    typer.echo(f"wrote {run.law / 'check.json'}")
