"""``order``: the next line as written among the same whitespace-separated tokens in another order.

The code default: distractors keep the line's bytes, so a small proxy that has learned the domain's
syntax beats chance and summed log-likelihood is not biased by length.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from demix.evaluate.items.common import ChoiceItem, indent, next_line_item, round_robin

_ORDER_WORDS = (3, 16)  # lines with this many whitespace-separated tokens make order items


def orderable(line: str) -> bool:
    """A line whose tokens are single-space separated (so a reordering has the same bytes)."""
    words = line.split()
    lo, hi = _ORDER_WORDS
    return lo <= len(words) <= hi and len(set(words)) > 1 and line == " " * indent(line) + " ".join(words)


def order_items(
    texts: Sequence[str],
    doc_ids: Sequence[int],
    n_items: int,
    rng: random.Random,
    *,
    n_choices: int,
    context_chars: int,
) -> list[ChoiceItem]:
    """Pick the next line as written among the same whitespace-separated tokens in another order.

    Distractors keep the line's indentation and bytes, so the choice rests on the domain's syntax
    (``for x in items:`` against ``in for items: x``), which a small model picks up quickly and a
    model that has not seen the domain lacks.
    """
    lines = {i: texts[i].split("\n") for i in doc_ids}
    cands = {
        i: [k for k in range(1, len(ls)) if orderable(ls[k]) and ls[k - 1].strip()] for i, ls in lines.items()
    }

    def make(i: int, k: int) -> ChoiceItem | None:
        true = lines[i][k]
        pad, words = " " * indent(true), true.split()
        false: list[str] = []
        for _ in range(20 * n_choices):
            shuffled = rng.sample(words, len(words))
            line = pad + " ".join(shuffled)
            if line != true and line not in false:
                false.append(line)
                if len(false) == n_choices - 1:
                    break
        if len(false) < n_choices - 1:
            return None
        return next_line_item(lines[i], k, false, rng, context_chars, i)

    return round_robin(cands, n_items, rng, make)


def can_make(text: str) -> bool:
    """Whether a document has a line after its first that can be reordered."""
    return any(orderable(line) for line in text.split("\n")[1:])
