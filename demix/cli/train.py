"""CLI commands of the train stage (being written)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
