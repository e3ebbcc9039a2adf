"""``comments``: the notes programmers left in the standard library, as text.

Blocks of consecutive full-line ``#`` comments with enough words to say something, the marker
stripped. Pragmas, encoding lines and commented-out code are skipped.
"""

from __future__ import annotations

import re
from functools import cache

from demix.corpora.builtin._stdlib import chunk_blocks, comment_spans, stdlib_sources, take_bytes
from demix.corpora.builtin.registry import register

DOC_BYTES = 3000
MIN_WORDS = 8
_PRAGMA = re.compile(r"^(!|-\*-|\s*(noqa|type:|pragma|fmt:|pylint|XXX\s*$|-+$|=+$))", re.IGNORECASE)
_CODE_LIKE = re.compile(r"^\s*(import |from \S+ import|def |class |return\b|if .*:$|for .*:$|\w+\s*=\s*\S)")


def comment_blocks(src: str) -> list[str]:
    """Full-line comment blocks of one source file, each as plain text lines."""
    blocks: list[list[str]] = []
    cur: list[str] = []
    last = -2
    row, pos = 0, 0
    for start, end in comment_spans(src):
        row += src.count("\n", pos, start)
        pos = start
        line_start = src.rfind("\n", 0, start) + 1
        if src[line_start:start].strip():  # an inline comment after code
            continue
        text = src[start:end].lstrip("#").strip()
        if row != last + 1 and cur:
            blocks.append(cur)
            cur = []
        last = row
        if _PRAGMA.match(text) or _CODE_LIKE.match(text):
            continue
        cur.append(text)
    if cur:
        blocks.append(cur)
    out = []
    for block in blocks:
        text = "\n".join(line for line in block if line).strip()
        if len(text.split()) >= MIN_WORDS:
            out.append(text)
    return out


@cache
def comment_documents() -> tuple[str, ...]:
    docs: list[str] = []
    for _, src in stdlib_sources():
        docs += chunk_blocks(comment_blocks(src), DOC_BYTES)
    return tuple(docs)


@register(
    "comments",
    group="general",
    description="programmers' notes: full-line comment blocks from the stdlib, '#' stripped",
)
def build_comments(max_bytes: int, seed: int) -> list[str]:
    return take_bytes(list(comment_documents()), max_bytes, seed, "comments")
