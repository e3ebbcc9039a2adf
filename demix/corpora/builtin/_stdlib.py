"""The part of the Python standard library every install has, read as text (never imported).

Debian-style distributions split ``test``, ``idlelib``, ``tkinter``, ``lib2to3``, ``distutils`` and
``ensurepip`` into separate packages, and ``_sysconfigdata*`` differs per platform, so they are left
out: the same Python version then gives the same files, and the same built-in domains, everywhere.
"""

from __future__ import annotations

import ast
import random
import re
import sysconfig
from collections.abc import Iterator
from functools import cache
from pathlib import Path

EXCLUDED_DIRS = frozenset(
    {
        "test",
        "tests",
        "idlelib",
        "tkinter",
        "turtledemo",
        "lib2to3",
        "distutils",
        "ensurepip",
        "site-packages",
        "dist-packages",
        "lib-dynload",
        "__pycache__",
    }
)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@cache
def stdlib_sources() -> tuple[tuple[str, str], ...]:
    """``(relative path, source)`` of every core standard-library ``.py`` file, sorted by path."""
    root = stdlib_root()
    out = []
    for p in root.rglob("*.py"):
        rel = p.relative_to(root)
        if set(rel.parts[:-1]) & EXCLUDED_DIRS or rel.parts[0].startswith("config-"):
            continue
        if p.name.startswith("_sysconfigdata"):
            continue
        try:
            src = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        out.append((rel.as_posix(), src))
    return tuple(sorted(out))


def chunk_blocks(blocks: list[str], max_bytes: int, sep: str = "\n\n") -> list[str]:
    """Join consecutive blocks into documents of at most ``max_bytes`` (a longer block is split by lines)."""
    docs: list[str] = []
    cur: list[str] = []
    size = 0
    for block in blocks:
        n = len(block.encode())
        if n > max_bytes:
            if cur:
                docs.append(sep.join(cur))
                cur, size = [], 0
            docs.extend(_split_lines(block, max_bytes))
            continue
        if cur and size + n + len(sep) > max_bytes:
            docs.append(sep.join(cur))
            cur, size = [], 0
        cur.append(block)
        size += n + len(sep)
    if cur:
        docs.append(sep.join(cur))
    return [d for d in docs if d.strip()]


def _split_lines(text: str, max_bytes: int) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    size = 0
    for line in text.split("\n"):
        n = len(line.encode()) + 1
        if cur and size + n > max_bytes:
            out.append("\n".join(cur))
            cur, size = [], 0
        cur.append(line)
        size += n
    if cur:
        out.append("\n".join(cur))
    return out


def take_bytes(docs: list[str], max_bytes: int, seed: int, salt: str) -> list[str]:
    """A seeded random subset of ``docs`` holding about ``max_bytes`` of text, in the original order."""
    order = list(range(len(docs)))
    random.Random(f"{salt}:{seed}").shuffle(order)
    chosen: list[int] = []
    total = 0
    for i in order:
        if total >= max_bytes:
            break
        chosen.append(i)
        total += len(docs[i].encode())
    return [docs[i] for i in sorted(chosen)]


# String literals (3.11 syntax: f-strings cannot nest their own quotes) or comments; strings match
# first at any position, so a '#' inside a string is never taken for a comment. Much faster than
# the pure-Python tokenize module; callers re-parse what they build from it.
_STRING_OR_COMMENT = re.compile(
    r"""(?P<str>(?:[rRbBuUfF]{1,2})?(?:'''(?:[^\\]|\\.)*?'''|\"\"\"(?:[^\\]|\\.)*?\"\"\"|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"))"""
    r"|(?P<comment>\#[^\n]*)",
    re.DOTALL,
)


def comment_spans(src: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of every ``#`` comment in a Python source."""
    return [m.span() for m in _STRING_OR_COMMENT.finditer(src) if m.lastgroup == "comment"]


def iter_defs(
    tree: ast.Module,
) -> Iterator[ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef]:
    """The module and every class/function in it, visiting statements only (faster than ast.walk)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                stack.extend(reversed(children))
