"""DeMix's rounds: which round a ticket's ``demix:slot`` falls in (pure)."""

from __future__ import annotations

from collections.abc import Sequence


def round_of(slot: int, rounds: Sequence[int]) -> tuple[int, int, int]:
    """(round, index within it, first slot of it); slots past the last round repeat its size."""
    start = 0
    r = 0
    while True:
        size = rounds[min(r, len(rounds) - 1)]
        if slot < start + size:
            return r, slot - start, start
        start += size
        r += 1
