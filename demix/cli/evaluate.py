"""``demix evaluate``: score one proxy (merge weights) or any HF checkpoint with lm-eval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from demix.cli.common import ConfigArg, RunDirOpt, SetOpt, console, load


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        config: ConfigArg,
        weights: Annotated[
            str | None,
            typer.Option("--weights", help="Merge the run's components: name=w,name=w (normalised)."),
        ] = None,
        checkpoint: Annotated[
            Path | None, typer.Option("--checkpoint", help="Evaluate this HF checkpoint directory instead.")
        ] = None,
        role: Annotated[str, typer.Option("--role", help="Tasks to run: search, report or all.")] = "all",
        out: Annotated[
            Path | None, typer.Option("--out", help="JSON output (default: `RUN/eval/<name>.json`).")
        ] = None,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show lm-eval's logging.")] = False,
        set_: SetOpt = None,
        run_dir: RunDirOpt = None,
    ) -> None:
        """Evaluate a proxy (--weights) or a checkpoint (--checkpoint) on the run's task suite.

        Prints a table of every task (value ± stderr, direction, group) and per-domain bits per byte,
        and writes all of it as JSON.
        """
        from demix.errors import DemixError
        from demix.evaluate.command import default_output, evaluate_model, write_result

        if role not in ("search", "report", "all"):
            raise DemixError(f"--role must be search, report or all, got {role!r}")
        cfg, run = load(config, set_, run_dir, stages=("merge", "evaluate"))
        res, source, suite = evaluate_model(
            cfg,
            run,
            weights=weights,
            checkpoint=checkpoint,
            role=role,  # type: ignore[arg-type]  # checked above
            quiet=not verbose,
        )
        path = out if out is not None else default_output(run, source)
        write_result(path, res, source, suite)
        _print_table(res, path)


def _print_table(res: object, path: Path) -> None:
    from rich.table import Table

    from demix.evaluate.result import EvalResult

    assert isinstance(res, EvalResult)
    table = Table(title=f"evaluation ({res.role}, {res.seconds:.2f} s)")
    table.add_column("task", no_wrap=True)
    for col in ("group", "role", "metric", "value", "± stderr", "better"):
        table.add_column(col, justify="right" if col in ("value", "± stderr") else "left")
    rows = {**res.metrics, **res.losses}
    for name, m in rows.items():
        se = "" if m.stderr is None else f"{m.stderr:.4f}"
        table.add_row(name, m.group, m.role, m.metric, f"{m.value:.4f}", se, m.direction)
    out = console()
    out.print(table)
    out.print(f"wrote {path}")
