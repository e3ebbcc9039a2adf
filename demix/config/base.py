"""Shared pieces of the config schema: strict models and human-friendly token counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from demix.util.units import parse_count  # the one parser; re-exported as demix.config.parse_count


def format_count(n: float) -> str:
    """Format a token count the way people say it: 1.5B, 250M, 12K."""
    for suffix, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"


Count = Annotated[int, BeforeValidator(parse_count)]
"""A non-negative integer that also accepts ``100B`` / ``2.5M`` / ``64K`` strings."""


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    if not TYPE_CHECKING:  # typed attribute access stays typed for mypy

        def __getattribute__(self, name: str) -> Any:
            value = super().__getattribute__(name)
            hook = _read_hook
            if hook is not None and name[0] != "_":
                return hook(self, name, value)
            return value


ReadHook = Callable[[StrictModel, str, Any], Any]
_read_hook: ReadHook | None = None


def set_read_hook(hook: ReadHook | None) -> ReadHook | None:
    """Install ``hook(model, name, value) -> value`` on every public attribute read of a config
    object (``None``: off, the default); returns the previous hook. Off, a read costs one global
    lookup. ``tests/test_pipeline_keys.py`` uses it to check each stage declares the keys it reads."""
    global _read_hook
    previous, _read_hook = _read_hook, hook
    return previous


def holder(data: dict[str, Any], parts: list[str]) -> dict[str, Any] | str:
    """The section of ``data`` that holds the dotted key ``parts``, missing sections created on the way.

    Where a value that is not a section stands in the way, its key is returned instead: the caller
    says so in its own words (``--set`` names it; a derived key leaves it to validation).
    """
    node = data
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            return p
        node = child
    return node
