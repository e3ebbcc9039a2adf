"""CLI commands of the search stage (being written)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
