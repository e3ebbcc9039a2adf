"""The ``demix`` command line: thin Typer commands that parse, load config, call one library
function and print. This is the only place that turns :class:`~demix.errors.DemixError` into exit
code 2 and a one-line message. Heavy libraries are imported inside commands so ``demix --help`` is fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from demix.errors import DemixError

app = typer.Typer(
    name="demix",
    help="Find the pretraining data mixture to train on (DeMix: merge components, score, search).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings wrap at 100 columns: a single newline is a space
)

# One module per stage; each defines register(app). Order is the order of `demix --help`.
_COMMAND_MODULES = (
    "pipeline",
    "config",
    "prepare",
    "train",
    "merge",
    "evaluate",
    "search",
    "law",
    "export",
    "validate",
    "compare",
)
for _name in _COMMAND_MODULES:
    importlib.import_module(f"demix.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``demix`` console script."""
    import click

    from demix.util.progress import pace_batch_logs

    pace_batch_logs()  # before any library imports tqdm: it reads its settings once

    try:
        rv = app(args=argv, standalone_mode=False)
    except (click.exceptions.Abort, typer.Abort):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    # typer >= 0.2x vendors its own click: a bad option value (e.g. below an option's min=) raises
    # typer's exception classes, which are not click's.
    except (click.exceptions.ClickException, typer.TyperException) as e:
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {e}", file=sys.stderr)
        sys.exit(int(getattr(e, "exit_code", 2)))
    except DemixError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
