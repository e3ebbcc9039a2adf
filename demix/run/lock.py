"""One command at a time per run directory: ``runs/<name>/.lock`` (created with O_EXCL) holds the
pid, host, command and start time of the process that owns the run. A lock left by a dead process
on this host is taken over with a note; any other lock refuses with exit 2 naming its holder."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from demix.errors import DemixError
from demix.util.process import pid_alive

LOCK_NAME = ".lock"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _stale(holder: dict[str, Any] | None, path: Path) -> bool:
    """A lock whose process is gone: same host and a dead pid, or unreadable and older than 10 s
    (a process killed between creating and writing it)."""
    if holder is None:
        with contextlib.suppress(OSError):
            return time.time() - path.stat().st_mtime > 10
        return False
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid)


def _describe(root: Path, holder: dict[str, Any] | None) -> str:
    if holder is None:
        return f"{root} is in use (unreadable {LOCK_NAME}; remove it if no demix command runs there)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started", 0))))
    host = holder.get("host")
    where = "" if host == socket.gethostname() else f" on {host}"
    return f"{root} is in use by pid {holder.get('pid')}{where} ({holder.get('command')}, since {since})"


def acquire(root: Path, command: str, *, note: Callable[[str], Any] | None = None) -> Path:
    """Take ``root/.lock`` for this process; returns its path.

    Raises:
        DemixError: another live process holds it (the message names the pid, command and time).
    """
    path = Path(root) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.time()}
    for _ in range(5):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read(path)
            if not _stale(holder, path):
                raise DemixError(_describe(Path(root), holder)) from None
            # Move the stale lock aside (atomic: of two takers, one rename wins) and try again.
            with contextlib.suppress(FileNotFoundError):
                os.rename(path, path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}"))
                os.unlink(path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}"))
                if note is not None:
                    pid = holder.get("pid") if holder else "?"
                    note(f"took over the lock of {root} left by pid {pid}, which is no longer running")
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise DemixError(f"{root}: could not take {LOCK_NAME} (it keeps changing hands)")


def release(path: Path) -> None:
    """Remove the lock if this process still holds it."""
    holder = _read(path)
    if holder is not None and holder.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(
    root: Path, command: str | None = None, *, note: Callable[[str], Any] | None = None
) -> Iterator[Path]:
    """Hold the run directory's lock for the block (``command``: default this process's argv)."""
    cmd = command if command is not None else " ".join(["demix", *sys.argv[1:]])
    path = acquire(root, cmd, note=note)
    try:
        yield path
    finally:
        release(path)


def hold(root: Path, command: str | None = None, *, note: Callable[[str], Any] | None = None) -> Path:
    """Take the lock until this process exits (for a command whose body is not one ``with`` block)."""
    import atexit

    cmd = command if command is not None else " ".join(["demix", *sys.argv[1:]])
    path = acquire(root, cmd, note=note)
    atexit.register(release, path)
    return path
