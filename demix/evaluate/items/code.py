"""``code``: the true next line of a source file among lines (same indentation first) from other files.

Takes any text; the code default is ``order`` (:mod:`demix.evaluate.items.order`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from demix.evaluate.items.common import ChoiceItem, indent, next_line_item, round_robin


def _code_lines(text: str) -> list[str]:
    return text.split("\n")


def _good_line(line: str) -> bool:
    s = line.strip()
    return len(s) >= 6 and not s.startswith("#")


def code_items(
    texts: Sequence[str],
    doc_ids: Sequence[int],
    n_items: int,
    rng: random.Random,
    *,
    n_choices: int,
    context_chars: int,
) -> list[ChoiceItem]:
    """Pick the true next line of a source file among lines (same indentation first) from other files."""
    lines = {i: _code_lines(texts[i]) for i in doc_ids}
    pool: dict[int, list[tuple[int, str]]] = {}  # indent -> (doc, line)
    for i, ls in lines.items():
        for line in ls:
            if _good_line(line):
                pool.setdefault(indent(line), []).append((i, line))
    flat = [x for v in pool.values() for x in v]
    cands = {
        i: [k for k in range(1, len(ls)) if _good_line(ls[k]) and ls[k - 1].strip()]
        for i, ls in lines.items()
    }

    def make(i: int, k: int) -> ChoiceItem | None:
        true = lines[i][k]
        same = [ln for d, ln in pool.get(indent(true), []) if d != i and ln.strip() != true.strip()]
        chosen = list(dict.fromkeys(rng.sample(same, min(len(same), 4 * n_choices))))[: n_choices - 1]
        if len(chosen) < n_choices - 1:
            rest = [ln for d, ln in flat if d != i and ln.strip() != true.strip() and ln not in chosen]
            chosen += list(dict.fromkeys(rng.sample(rest, min(len(rest), 4 * n_choices))))[
                : n_choices - 1 - len(chosen)
            ]
        if len(chosen) < n_choices - 1:
            return None
        return next_line_item(lines[i], k, chosen, rng, context_chars, i)

    return round_robin(cands, n_items, rng, make)
