"""Errors a user can fix. The CLI turns them into exit code 2 and one line, never a traceback."""

from __future__ import annotations

from pathlib import Path


class DemixError(Exception):
    """A problem with the user's input (config, files, arguments), not a bug in demix.

    The message must name the file, key or value at fault. The CLI prints ``error: <message>`` and
    exits with code 2.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class ConfigError(DemixError):
    """The experiment config is invalid (unknown key, wrong type, impossible value)."""


class DataError(DemixError):
    """A data source or prepared artefact is missing, empty, unreadable or malformed."""


class StageError(DemixError):
    """A stage was asked to run before the stages it needs (e.g. export before search)."""
