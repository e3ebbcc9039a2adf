"""Shared pieces of the config schema: strict models and human-friendly token counts."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMBGT]?)\s*$", re.IGNORECASE)


def parse_count(value: Any) -> int:
    """Parse a count such as ``100B``, ``2.5M``, ``4096`` or ``1e9`` into an int.

    Raises:
        ValueError: the value is not a non-negative count.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a count like 100B or 2M, got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite count, got {value!r}")
        n = round(value)
    elif isinstance(value, str):
        m = _COUNT.match(value)
        if not m:
            raise ValueError(f"expected a count like 100B or 2M, got {value!r}")
        n = round(float(m.group(1)) * _SUFFIX[m.group(2).upper()])
    else:
        raise ValueError(f"expected a count like 100B or 2M, got {value!r}")
    if n < 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return n


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
