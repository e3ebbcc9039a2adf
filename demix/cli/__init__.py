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
)
for _name in _COMMAND_MODULES:
    importlib.import_module(f"demix.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``demix`` console script."""
    import click

    try:
        rv = app(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except DemixError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
