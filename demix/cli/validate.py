"""``demix validate``: train references on sampled mixtures and report DeMix's fidelity metrics."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, load


def format_fidelity(doc: dict[str, Any]) -> str:
    """The fidelity table: Spearman, top-quarter Spearman and recovery per group with intervals."""
    from demix.report.build import interval_text

    fid = doc["fidelity"]
    lines = [
        f"{doc['n']} mixtures, references trained on {doc['reference_tokens']:,} tokens each; "
        f"top quarter k={fid['k_top']}; [95% bootstrap interval over mixtures]",
        f"{'group':<12}{'Spearman':>24}{'top-quarter Spearman':>26}{'capability recovery':>26}",
    ]
    for g in fid["spearman"]:
        cells = [interval_text(fid[m][g]) for m in ("spearman", "top_spearman", "recovery")]
        lines.append(f"{g:<12}{cells[0]:>24}{cells[1]:>26}{cells[2]:>26}")
    tasks = fid.get("task_spearman") or {}
    if tasks:
        lines.append("Spearman of each task alone:")
        lines += [f"  {t:<36}{interval_text(v):>24}" for t, v in tasks.items()]
    law = doc.get("law") or {}
    if "t_correlation" in law:
        lines.append(f"law on references vs on proxies: t_ij correlation {law['t_correlation']:.3f}")
    elif law.get("skipped"):
        lines.append(f"law comparison skipped: {law['skipped']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate_cmd(
        config: ConfigArg,
        set_: SetOpt = None,
        run_dir: RunDirOpt = None,
        n_mixtures: Annotated[
            int | None,
            typer.Option(
                "--n-mixtures",
                min=3,
                help="How many mixtures to train references on (default validate.mixtures).",
            ),
        ] = None,
        old_mixtures: Annotated[
            int | None,
            typer.Option("--mixtures", min=3, hidden=True, help="Deprecated spelling of --n-mixtures."),
        ] = None,
    ) -> None:
        """Sample mixtures, train a reference model on each from the base with the components' token
        budget, score references and proxies on the same tasks, and report Spearman per group and macro,
        top-quarter Spearman and capability recovery. Resumes: references already trained are kept."""
        from demix.errors import DemixError
        from demix.validate import validate

        if old_mixtures is not None:
            if n_mixtures is not None:
                raise DemixError("give --n-mixtures only (--mixtures is its deprecated spelling)")
            typer.echo("warning: --mixtures is deprecated; use --n-mixtures", err=True)
            n_mixtures = old_mixtures
        cfg, run = load(
            config,
            set_,
            run_dir,
            flags={"validate.mixtures": n_mixtures},
            stages=("merge", "evaluate", "validate"),
        )
        doc = validate(cfg, run)
        typer.echo(format_fidelity(doc))
        typer.echo(f"saved: {run.validation / 'validation.json'}")
