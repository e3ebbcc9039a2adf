"""Atomic file writes and JSON reads: a crash or a bad input never leaves a half-written file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from demix.errors import DataError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it is renamed onto ``path`` atomically.

    On an exception the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError("is a directory, not a file to write", path=path)
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


@contextlib.contextmanager
def atomic_dir(path: Path, *, within: Path | None = None) -> Iterator[Path]:
    """Yield a temp directory; on success it replaces ``path`` as a whole (see :func:`replace_dir`).

    The temp directory is made beside ``path`` (or in ``within``, on the same file system) with the
    mode ``mkdir`` would give it. On an exception it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    where = Path(within) if within is not None else path.parent
    where.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=where))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a run is read by everyone who may
        yield tmp
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when it replaced ``path``


def remove_orphaned_temps(root: Path) -> list[Path]:
    """Remove what atomic writes leave behind when killed between creating their temp and renaming
    it (``.<name>.<random>.tmp``, files and directories) anywhere under ``root``; returns them.

    Only while no writer can be running under ``root`` (the run's lock held): a live writer's temp
    would go with them.
    """
    gone: list[Path] = []
    for here, dirs, files in os.walk(root):
        for name in [d for d in dirs if d.startswith(".") and d.endswith(".tmp")]:
            shutil.rmtree(Path(here) / name, ignore_errors=True)
            dirs.remove(name)
            gone.append(Path(here) / name)
        for name in (f for f in files if f.startswith(".") and f.endswith(".tmp")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(Path(here) / name)
            gone.append(Path(here) / name)
    return gone


def aside_name(out: Path) -> Path:
    """Where :func:`replace_dir` keeps the previous ``out`` between its two renames: a reader that
    finds no ``out`` after a kill looks here."""
    return out.with_name(f".{out.name}.old")


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` onto ``out``; an existing ``out`` is moved aside first, then removed.

    Raises:
        DataError: ``out`` exists and is not a directory.
    """
    if not out.exists():
        tmp.rename(out)
        return
    if not out.is_dir():
        raise DataError("exists and is not a directory", path=out)
    old = aside_name(out)
    if old.exists():
        shutil.rmtree(old)
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(old)


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


def read_text(path: Path, what: str = "file") -> str:
    """The UTF-8 text of a file a user handed demix (a leading BOM dropped).

    Raises:
        DataError: naming the file: missing, a directory, unreadable, binary (NUL bytes), not
            UTF-8, or empty.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"is a directory, not a {what}", path=path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("not found", path=path) from None
    except OSError as e:
        raise DataError(f"cannot be read: {e.strerror or e}", path=path) from None
    if b"\x00" in raw:
        raise DataError(f"is a binary file (NUL bytes), not a text {what}", path=path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"is not UTF-8 text (invalid byte at offset {e.start})", path=path) from None
    if not text.strip():
        raise DataError(f"is empty (expected a {what})", path=path)
    return text


def read_json(path: Path) -> Any:
    """Parse a JSON file; every way it can be unreadable is a :class:`DataError` naming it."""
    text = read_text(path, "JSON file")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"not valid JSON: {e}", path=path) from None
