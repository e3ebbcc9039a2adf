"""``demix recommend``, ``demix export`` and ``demix report``: the end of the pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, load, parse_tokens

if TYPE_CHECKING:
    from demix.recommend.build import Recommendation


def format_recommendation(rec: Recommendation) -> str:
    """The candidates side by side: data ratios with intervals, predictions, the chosen one marked."""
    names = list(rec.candidates)
    width = max(8, *(len(d) for d in rec.domains))
    head = f"{'source':<{width}}  " + "  ".join(f"{n + (' *' if n == rec.choice else ''):>22}" for n in names)
    lines = ["data ratios r (95% bootstrap interval over trials); * = export.choose", head]
    for i, d in enumerate(rec.domains):
        cells = []
        for n in names:
            c = rec.candidates[n]
            iv = f" [{c.interval[i, 0]:.2f},{c.interval[i, 1]:.2f}]" if c.interval is not None else ""
            cells.append(f"{c.r[i]:.3f}{iv}".rjust(22))
        lines.append(f"{d:<{width}}  " + "  ".join(cells))
    for key, label in (
        ("surrogate_objective", "surrogate"),
        ("measured_objective", "measured"),
        ("law_loss", "law loss"),
    ):
        vals = [rec.candidates[n].predicted.get(key) for n in names]
        if any(v is not None for v in vals):
            lines.append(
                f"{label:<{width}}  "
                + "  ".join((f"{v:.4f}" if v is not None else "—").rjust(22) for v in vals)
            )
    if rec.pareto:
        lines.append(f"Pareto set over groups: trials {', '.join(str(p['trial']) for p in rec.pareto)}")
    lines += [f"warning: {w}" for w in rec.warnings]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("recommend")
    def recommend_cmd(config: ConfigArg, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
        """The recommended mixture of a finished search: DeMix's surrogate top-k, the best measured
        trial and the law optimum side by side, as data ratios with bootstrap intervals over trials."""
        from demix.recommend import recommend

        cfg, run = load(config, set_, run_dir, stages=("recommend", "export"))
        rec = recommend(cfg, run)
        typer.echo(format_recommendation(rec))
        typer.echo(f"saved: {run.export / 'recommendation.json'}")

    @app.command("export")
    def export_cmd(
        config: ConfigArg,
        set_: SetOpt = None,
        run_dir: RunDirOpt = None,
        tokens: Annotated[
            str | None,
            typer.Option(
                "--tokens",
                help="Size of the training run the mixture is for, e.g. 100B (default export.target_tokens).",
            ),
        ] = None,
        strict: Annotated[
            bool,
            typer.Option(
                "--strict",
                help="Fail (exit 2, nothing written) when a source would exceed export.max_epochs.",
            ),
        ] = False,
        method: Annotated[
            str | None,
            typer.Option(
                "--method",
                help="Export this method's mixture from compare/compare.json (demix compare) instead, "
                "to export/methods/METHOD/.",
            ),
        ] = None,
    ) -> None:
        """Write the chosen mixture for a data team: data ratios (never merge weights), tokens and epochs
        per source, as JSON, YAML, CSV, a Megatron-LM blend, a HF interleave_datasets snippet and a summary."""
        from demix.export.stage import export

        cfg, run = load(
            config,
            set_,
            run_dir,
            flags={"export.strict_epochs": True if strict else None},
            stages=("export",),
        )
        # --tokens sizes this export only: export.target_tokens also set the search's epoch caps, which
        # the recommendation was made under, so the flag is an argument rather than an override.
        paths = export(cfg, run, target_tokens=parse_tokens(tokens), method=method)
        md = (run.export if method is None else run.export / "methods" / method) / "recommended_mixture.md"
        if md.is_file():
            typer.echo(md.read_text())
        typer.echo("files:\n" + "\n".join(f"  {p}" for p in paths))

    @app.command("report")
    def report_cmd(config: ConfigArg, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
        """One self-contained HTML page (and the same as markdown) with the recommendation, the search,
        the law cross-check and, when it ran, the validation against trained references."""
        from demix.report import report

        cfg, run = load(config, set_, run_dir, stages=("recommend", "export"))
        path = report(cfg, run)
        typer.echo(f"report: {path}\nmarkdown: {path.with_suffix('.md')}")
