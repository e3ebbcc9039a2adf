"""Stage records: ``.stages/<stage>.json`` holds the inputs hash a stage finished with (and, from
``demix run``, the values of the keys it hashed), so a stage is skipped when its inputs have not
changed and ``demix status`` can say which keys changed."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from demix.util.io import write_json_atomic


def stage_record_path(run_root: Path, stage: str) -> Path:
    return Path(run_root) / ".stages" / f"{stage.replace('/', '__')}.json"


def stage_done(run_root: Path, stage: str, inputs_hash: str) -> bool:
    """True when ``stage`` finished before with the same inputs."""
    record = read_stage_record(run_root, stage)
    return record is not None and record.get("inputs_hash") == inputs_hash


def read_stage_record(run_root: Path, stage: str) -> dict[str, Any] | None:
    """The record of ``stage`` (``None``: none, or not readable as one)."""
    p = stage_record_path(run_root, stage)
    try:
        doc = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def mark_stage_done(run_root: Path, stage: str, inputs_hash: str, **extra: Any) -> None:
    write_json_atomic(
        stage_record_path(run_root, stage),
        {"stage": stage, "inputs_hash": inputs_hash, "finished": time.time(), **extra},
    )


def clear_stage(run_root: Path, stage: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        stage_record_path(run_root, stage).unlink()
