"""``demix prepare``: tokenizer, token files and manifest from the candidate corpora."""

from __future__ import annotations

from typing import Annotated

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, console, load


def register(app: typer.Typer) -> None:
    @app.command("prepare")
    def prepare_cmd(
        config: ConfigArg,
        set_: SetOpt = None,
        run_dir: RunDirOpt = None,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Show progress bars.")
        ] = True,
    ) -> None:
        """Load the candidates, train (or load) the tokenizer, hold out documents, pack token files and
        write data/manifest.json. Rerunning with unchanged sources and settings does nothing."""
        import time

        from rich.table import Table

        from demix.config import format_count
        from demix.data import prepare

        cfg, run = load(config, set_, run_dir, stages=())
        t0 = time.perf_counter()
        manifest = prepare(cfg, run, progress=progress)
        table = Table(title=f"{cfg.name}: {len(manifest.domains)} domains ({manifest.dtype} token files)")
        for col in ("domain", "group", "docs train/val", "tokens train/val", "bytes/token"):
            table.add_column(col, justify="left" if col in ("domain", "group") else "right")
        for d in manifest.domains:
            table.add_row(
                d.name + ("*" if d.name == manifest.general else ""),
                d.group or "",
                f"{d.train_docs:,} / {d.val_docs:,}",
                f"{format_count(d.train_tokens)} / {format_count(d.val_tokens)}",
                f"{d.train_bytes / max(1, d.train_tokens):.2f}",
            )
        table.caption = "* the general domain"
        console().print(table)
        typer.echo(f"tokenizer: {run.tokenizer} (vocabulary {manifest.vocab_size:,})")
        typer.echo(f"manifest:  {run.manifest}")
        typer.echo(f"done in {time.perf_counter() - t0:.1f} s")
