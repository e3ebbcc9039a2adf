"""Built-in offline domains: real text every machine with Python has, no network, no downloads.

Each domain is a builder ``(max_bytes, seed) -> documents`` registered by name in
:mod:`~demix.corpora.builtin.registry`; the output depends only on the Python version,
``max_bytes`` and ``seed``. Domains are kept apart on purpose: docstrings and comments are stripped
from ``code`` because they feed ``prose`` and ``comments``.

Example::

    from demix.corpora.builtin import build_builtin, builtin_names
    builtin_names()  # ['code', 'comments', 'math', 'prose', 'tables']
    docs = build_builtin("math", max_bytes=100_000, seed=0)
"""

from __future__ import annotations

# Importing the domain modules registers them (in this order, which builtin_names() keeps).
from demix.corpora.builtin import code, comments, math, prose, tables
from demix.corpora.builtin.registry import (
    BuiltinDomain,
    build_builtin,
    builtin_domain,
    builtin_names,
    register,
)

__all__ = [
    "BuiltinDomain",
    "build_builtin",
    "builtin_domain",
    "builtin_names",
    "code",
    "comments",
    "math",
    "prose",
    "register",
    "tables",
]
