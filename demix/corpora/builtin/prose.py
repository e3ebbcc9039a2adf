"""``prose``: English from the standard library's own documentation.

The reference topics that ``help()`` shows (``pydoc_data/topics.py``) plus the docstrings of every
module, class and function, with interactive ``>>>`` examples dropped so the text stays prose.
"""

from __future__ import annotations

import ast
from functools import cache

from demix.corpora.builtin._stdlib import chunk_blocks, iter_defs, stdlib_sources, take_bytes
from demix.corpora.builtin.registry import register

DOC_BYTES = 3000  # documents are cut at paragraph boundaries to about this size
MIN_WORDS = 6  # shorter docstrings ("Return self.") carry little prose


def _paragraphs(text: str) -> list[str]:
    paras = []
    for para in text.split("\n\n"):
        para = para.strip("\n")
        if not para.strip() or ">>>" in para:
            continue
        paras.append(para)
    return paras


def _docstrings(tree: ast.Module) -> list[str]:
    out = []
    for node in iter_defs(tree):
        doc = ast.get_docstring(node, clean=True)
        if doc and len(doc.split()) >= MIN_WORDS:
            out.append("\n\n".join(_paragraphs(doc)))
    return [d for d in out if d.strip()]


@cache
def prose_documents() -> tuple[str, ...]:
    """Every prose document, in a fixed order (topics, then docstrings module by module)."""
    from pydoc_data.topics import topics  # type: ignore[import-not-found]

    docs: list[str] = []
    for key in sorted(topics):
        docs += chunk_blocks(_paragraphs(topics[key]), DOC_BYTES)
    for _, src in stdlib_sources():
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        docs += chunk_blocks(_docstrings(tree), DOC_BYTES)
    return tuple(docs)


@register(
    "prose",
    group="general",
    description="English prose: pydoc reference topics and stdlib docstrings (no doctest examples)",
)
def build_prose(max_bytes: int, seed: int) -> list[str]:
    return take_bytes(list(prose_documents()), max_bytes, seed, "prose")
