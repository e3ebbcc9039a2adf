"""Provenance, content hashes, atomic writes and stage records shared by every stage.

Every JSON a stage writes records demix's version, the git commit when known, library versions and
the hashes of its inputs; a stage is skipped when the recorded input hash is unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
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
    root = Path(__file__).resolve().parents[1]
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


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_json(obj: Any) -> str:
    """A stable hash of a JSON-able object (keys sorted)."""
    return hash_bytes(json.dumps(obj, sort_keys=True, default=str).encode())


def hash_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_tree(path: Path) -> str:
    """Hash of every file under a directory (names and contents), or of one file."""
    path = Path(path)
    if path.is_file():
        return hash_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode())
        h.update(hash_file(p).encode())
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it is renamed onto ``path`` atomically.

    On an exception the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    from demix.errors import DataError

    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError("not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"not valid JSON: {e}", path=path) from None


# ---- stage records ------------------------------------------------------------------------------


def stage_record_path(run_root: Path, stage: str) -> Path:
    return Path(run_root) / ".stages" / f"{stage.replace('/', '__')}.json"


def stage_done(run_root: Path, stage: str, inputs_hash: str) -> bool:
    """True when ``stage`` finished before with the same inputs."""
    p = stage_record_path(run_root, stage)
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("inputs_hash") == inputs_hash
    except (json.JSONDecodeError, OSError):
        return False


def mark_stage_done(run_root: Path, stage: str, inputs_hash: str, **extra: Any) -> None:
    write_json_atomic(
        stage_record_path(run_root, stage),
        {"stage": stage, "inputs_hash": inputs_hash, "finished": time.time(), **extra},
    )


def clear_stage(run_root: Path, stage: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        stage_record_path(run_root, stage).unlink()
