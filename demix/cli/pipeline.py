"""``demix run`` (every stage, skipping what is done) and ``demix status``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, console, load


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        config: ConfigArg,
        set_: SetOpt = None,
        run_dir: RunDirOpt = None,
        force: Annotated[
            list[str] | None,
            typer.Option("--force", help="Redo this stage and the ones after it (repeatable)."),
        ] = None,
        with_validate: Annotated[
            bool,
            typer.Option("--with-validate", help="Also train reference models and measure proxy fidelity."),
        ] = False,
        with_compare: Annotated[
            bool,
            typer.Option(
                "--with-compare",
                help="Also compare every mixing method (compare.methods), each answer checked by training.",
            ),
        ] = False,
        until: Annotated[str | None, typer.Option("--until", help="Stop after this stage.")] = None,
    ) -> None:
        """Run the whole pipeline: prepare, train base and components, search, law check, recommend,
        export, report. Stages whose inputs have not changed are skipped, so a stopped run continues."""
        from demix.config import dump_config
        from demix.pipeline import run_all, skipped_optional
        from demix.preflight import stages_but
        from demix.run.lock import run_lock
        from demix.util.io import write_text_atomic

        # the rules of every stage this run takes up: not those of an optional stage it will not run
        skipped = skipped_optional(
            force=force or (), with_validate=with_validate, with_compare=with_compare, until=until
        )
        cfg, run = load(config, set_, run_dir, stages=stages_but(skipped))
        t0 = time.perf_counter()
        with run_lock(run.root, note=lambda m: typer.echo(f"note: {m}", err=True)):
            write_text_atomic(run.config, dump_config(cfg))
            run_all(
                cfg,
                run,
                force=force or (),
                with_validate=with_validate,
                with_compare=with_compare,
                until=until,
                on_stage=_on_stage(),
            )
        typer.echo(f"\nrun finished in {time.perf_counter() - t0:.1f} s: {run.root}")
        mixture = run.export / "recommended_mixture.json"
        report = run.report / "report.html"
        if mixture.is_file():
            typer.echo(f"recommended mixture: {mixture}")
            _print_mixture(mixture)
        if report.is_file():
            typer.echo(f"report:              {report}")

    @app.command("status")
    def status_cmd(config: ConfigArg, set_: SetOpt = None, run_dir: RunDirOpt = None) -> None:
        """Show which stages of a run are done, stale (inputs changed since) or pending."""
        from rich.markup import escape
        from rich.table import Table

        from demix.pipeline import status

        # Status only reads the run: the cross-stage rules (some import lm-eval or mergekit) are for
        # commands that would act on the config.
        cfg, run = load(config, set_, run_dir, check=False)
        table = Table(title=f"{cfg.name}: {run.root}")
        table.add_column("stage")
        table.add_column("state")
        table.add_column("why (stale: the keys that changed)")
        colour = {"done": "green", "stale": "yellow", "pending": "dim", "not needed": "cyan"}
        for st in status(cfg, run):
            label = st.name + (" (optional)" if st.optional else "")
            table.add_row(label, f"[{colour[st.state]}]{st.state}[/]", escape("; ".join(st.changed)))
        console().print(table)


def _on_stage() -> Callable[[str, str, str], None]:
    """Progress lines of ``demix run``: what it redoes and why, where old outputs went, timings."""
    started: dict[str, float] = {}

    def on_stage(name: str, event: str, detail: str) -> None:
        if event == "redo":
            typer.secho(f"== {name}: redoing it ({detail})", fg="yellow", err=True)
        elif event == "continue":
            typer.secho(
                f"== {name}: continuing it ({detail}; the work so far is kept)", fg="yellow", err=True
            )
        elif event == "moved":
            typer.echo(f"== {name}: previous outputs moved to {detail}", err=True)
        elif event == "start":
            started[name] = time.perf_counter()
            typer.secho(f"== {name}", bold=True, err=True)
        elif event == "skip":
            typer.echo(f"== {name}: done already, skipped", err=True)
        elif event == "unneeded":
            typer.echo(f"== {name}: not needed ({detail})", err=True)
        else:
            typer.echo(f"== {name}: finished in {time.perf_counter() - started[name]:.1f} s", err=True)

    return on_stage


def _print_mixture(path: Path) -> None:
    """Print the exported data ratios, tokens and epochs, one line per source, in aligned columns."""
    import json

    doc = json.loads(path.read_text())
    epochs = doc.get("epochs") or {}
    tokens = {d: f"{doc['tokens'][d]:,}" for d in doc["domains"]}
    name_w = max(12, *(len(d) for d in doc["domains"]))
    tok_w = max(12, *(len(t) for t in tokens.values()))  # 40B is 14 characters with its commas
    typer.echo(f"  {'source':<{name_w}} {'ratio':>7} {'tokens':>{tok_w}} {'epochs':>7}")
    for d in doc["domains"]:
        ep = epochs.get(d)
        ep_s = f"{ep:7.2f}" if ep is not None else "      -"
        typer.echo(f"  {d:<{name_w}} {doc['ratios'][d]:7.2%} {tokens[d]:>{tok_w}} {ep_s}")
