"""``code``: standard-library Python source with docstrings and comments stripped.

Docstrings feed ``prose`` and comments feed ``comments``; stripping them here keeps the domains
apart, so a component trained on code learns code, not English.
"""

from __future__ import annotations

import ast
import random
import re

from demix.corpora.builtin._stdlib import chunk_blocks, comment_spans, iter_defs, stdlib_sources
from demix.corpora.builtin.registry import register

DOC_BYTES = 4000
_TOP_LEVEL = re.compile(r"^[^\s#)\]}]")


def _offsets(src: str) -> list[int]:
    """Character offset of the start of each line (1-based line numbers index into it)."""
    offs = [0, 0]
    for line in src.split("\n"):
        offs.append(offs[-1] + len(line) + 1)
    return offs


def _char_col(lines: list[str], lineno: int, col: int) -> int:
    """ast gives columns in UTF-8 bytes; turn one into a character index."""
    return len(lines[lineno - 1].encode()[:col].decode(errors="ignore"))


def strip_docs_and_comments(src: str) -> str | None:
    """The source without docstrings and comments, formatting otherwise kept; None if it won't parse.

    A body that was only a docstring gets ``pass`` so the result still parses.
    """
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return None
    offs = _offsets(src)
    lines = src.split("\n")
    spans: list[tuple[int, int, str]] = []  # (start, end, replacement), character offsets
    for node in iter_defs(tree):
        body = node.body
        first = body[0] if body else None
        if not (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            continue
        assert first.end_lineno is not None and first.end_col_offset is not None
        start = offs[first.lineno] + _char_col(lines, first.lineno, first.col_offset)
        end = offs[first.end_lineno] + _char_col(lines, first.end_lineno, first.end_col_offset)
        spans.append((start, end, "pass" if len(body) == 1 else ""))
    spans += [(start, end, "") for start, end in comment_spans(src)]
    pieces: list[str] = []
    pos = 0
    for start, end, repl in sorted(spans):
        if start < pos:  # a comment inside a removed docstring's span cannot happen; be safe
            continue
        # Keep the newlines a removal spans so output line i is still source line i.
        pieces += [src[pos:start], repl, "\n" * src.count("\n", start, end)]
        pos = end
    pieces.append(src[pos:])
    out = "".join(pieces)
    kept: list[str] = []
    blank_run = 0
    for i, line in enumerate(out.split("\n")):
        line = line.rstrip()
        if not line:
            # Lines emptied by a removal go; blank lines that were there stay (at most two in a row,
            # none right after a block opener whose docstring went).
            if lines[i].strip() or blank_run >= 2 or (kept and kept[-1].endswith(":")):
                continue
            blank_run += 1
        else:
            blank_run = 0
        kept.append(line)
    result = "\n".join(kept).strip("\n") + "\n"
    try:
        ast.parse(result)
    except SyntaxError:
        return None
    return result


def _top_level_blocks(src: str) -> list[str]:
    blocks: list[list[str]] = []
    for line in src.split("\n"):
        starts_block = bool(_TOP_LEVEL.match(line)) and not line.startswith(
            ("else", "elif", "except", "finally")
        )
        prev_is_decorator = bool(blocks) and blocks[-1] and blocks[-1][-1].startswith("@")
        if (starts_block and not prev_is_decorator) or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    return ["\n".join(b).strip("\n") for b in blocks if "".join(b).strip()]


def code_documents(src: str) -> list[str]:
    """One source file as code documents (stripped, cut at top-level statements); [] if unparsable."""
    stripped = strip_docs_and_comments(src)
    return chunk_blocks(_top_level_blocks(stripped), DOC_BYTES, sep="\n\n\n") if stripped else []


@register(
    "code",
    group="code",
    description="Python: stdlib source with docstrings and comments stripped, cut at top-level statements",
)
def build_code(max_bytes: int, seed: int) -> list[str]:
    # Files in a seeded order until enough text: stripping is the slow part, so strip only what is used.
    files = list(stdlib_sources())
    random.Random(f"code:{seed}").shuffle(files)
    docs: list[str] = []
    total = 0
    for _, src in files:
        if total >= max_bytes:
            break
        for doc in code_documents(src):
            if total >= max_bytes:
                break
            docs.append(doc)
            total += len(doc.encode())
    return docs
