"""The provenance block every stage's JSON carries: demix's version, the git commit when known,
library versions, the time, and the hashes of its inputs."""

from __future__ import annotations

import contextlib
import subprocess
import time
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import demix

_LIBS = (
    "torch",
    "transformers",
    "safetensors",
    "datasets",
    "tokenizers",
    "lm_eval",
    "optuna",
    "numpy",
    "scipy",
)


@cache
def git_commit() -> str | None:
    """The commit of the demix checkout, when demix runs from one."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@cache
def library_versions() -> dict[str, str]:
    versions = {}
    for lib in _LIBS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[lib] = metadata.version(lib.replace("_", "-"))
    return versions


def provenance(inputs: dict[str, str] | None = None) -> dict[str, Any]:
    """The block every stage's JSON carries under ``"provenance"``."""
    return {
        "demix_version": demix.__version__,
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "inputs": dict(inputs or {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
