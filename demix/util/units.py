"""The one parser of human-friendly sizes and counts: ``70M``, ``1.4B``, ``100b``, ``64K``, ``1e9``.

Token counts in the config (``Count``), ``--tokens`` on the command line and ``model_size`` in a
law's measurement table all go through :func:`parse_quantity`, so they accept the same suffixes
(case-insensitive): K = 10^3, M = 10^6, B = G = 10^9, T = 10^12.
"""

from __future__ import annotations

import re
from typing import Any

SCALE = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_QUANTITY = re.compile(r"^\s*([0-9.eE+-]+)\s*([KMBGT]?)\s*$", re.IGNORECASE)
_COUNT_HINT = "expected a count like 100B or 2M"


def parse_quantity(text: str) -> float:
    """'70M' -> 7e7, '1.4B' -> 1.4e9, '125000000' -> 1.25e8, '2g' -> 2e9.

    Raises:
        ValueError: ``text`` is not a number with an optional suffix.
    """
    m = _QUANTITY.match(text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * SCALE[m.group(2).upper()]


def parse_count(value: Any) -> int:
    """Parse a count such as ``100B``, ``2.5M``, ``4096`` or ``1e9`` into an int.

    Raises:
        ValueError: the value is not a non-negative count.
    """
    if isinstance(value, bool):
        raise ValueError(f"{_COUNT_HINT}, got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite count, got {value!r}")
        n = round(value)
    elif isinstance(value, str):
        try:
            x = parse_quantity(value)
        except ValueError:
            x = -1.0
        if not 0 <= x < float("inf"):  # a sign is part of a size's grammar, not of a count's
            raise ValueError(f"{_COUNT_HINT}, got {value!r}")
        n = round(x)
    else:
        raise ValueError(f"{_COUNT_HINT}, got {value!r}")
    if n < 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return n
