"""The registry of built-in offline domains: a name -> builder table the domain modules fill in.

Each domain module decorates its builder with :func:`register`; the names allowed are the config's
:data:`demix.config.data.BUILTIN_DOMAINS` (the schema checks a source's ``builtin`` against that
list, so ``demix config validate`` rejects an unknown domain without loading any corpus).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from demix.config.data import BUILTIN_DOMAINS
from demix.errors import DataError

Builder = Callable[[int, int], list[str]]


@dataclass(frozen=True)
class BuiltinDomain:
    """A registered built-in domain. Bump ``version`` when the builder's output changes."""

    name: str
    group: str  # the capability group it serves: general, code or math
    description: str
    build: Builder
    version: int = 1

    def fingerprint(self) -> dict[str, object]:
        """What determines this domain's text, besides size and seed."""
        return {"builtin": self.name, "version": self.version, "python": list(sys.version_info[:3])}


_REGISTRY: dict[str, BuiltinDomain] = {}


def register(name: str, *, group: str, description: str, version: int = 1) -> Callable[[Builder], Builder]:
    """Decorator adding a builder to the registry under ``name`` (one of ``BUILTIN_DOMAINS``)."""
    if name not in BUILTIN_DOMAINS:
        raise ValueError(f"built-in domain {name!r}: add it to demix.config.data.BUILTIN_DOMAINS first")

    def deco(fn: Builder) -> Builder:
        _REGISTRY[name] = BuiltinDomain(name, group, description, fn, version)
        return fn

    return deco


def builtin_names() -> list[str]:
    return list(_REGISTRY)


def builtin_domain(name: str) -> BuiltinDomain:
    """The registered domain ``name``.

    Raises:
        DataError: no such built-in domain (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataError(
            f"no built-in domain {name!r} (built-in domains: {', '.join(builtin_names())})"
        ) from None


def build_builtin(name: str, max_bytes: int, seed: int = 0) -> list[str]:
    """Build about ``max_bytes`` of documents of the built-in domain ``name`` (fewer if it has less)."""
    dom = builtin_domain(name)
    docs = dom.build(max_bytes, seed)
    if not docs:
        raise DataError(f"built-in domain {name!r} produced no documents (max_bytes={max_bytes})")
    return docs
