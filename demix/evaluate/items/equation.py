"""``equation``: a worked step ``x op y = z`` as written among the same numbers in other places.

The math default: what a small proxy (1M-100M parameters) moves well above chance by learning its
domain. Choices have the same bytes, so summed log-likelihood is not biased by length.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence

from demix.evaluate.items.common import ChoiceItem, left_truncate, round_robin, shuffle_choices

_NUM = r"\d+(?:\.\d+)?"
# x op y = z with optional single spaces ("42 * 2 = 84", GSM8K's "<<48/2=24>>"), x not inside a fraction
_EQUATION = re.compile(rf"(?<![\w.)/])({_NUM})( ?)([-+*/×])( ?)({_NUM})( ?= ?\$?)({_NUM})(?![\w/(])")


def _holds(a: str, op: str, b: str, c: str) -> bool:
    x, y, z = float(a), float(b), float(c)
    if op == "/":
        return y != 0 and abs(x / y - z) < 1e-9
    got = {"+": x + y, "-": x - y, "*": x * y, "×": x * y}[op]
    return abs(got - z) < 1e-9


def equations(text: str) -> list[re.Match[str]]:
    """True equations of three different numbers (not ``105/100 = 84`` out of ``80 * 105/100 = 84``)."""
    return [
        m
        for m in _EQUATION.finditer(text)
        if len(set(m.group(1, 5, 7))) == 3 and _holds(m.group(1), m.group(3), m.group(5), m.group(7))
    ]


def equation_items(
    texts: Sequence[str],
    doc_ids: Sequence[int],
    n_items: int,
    rng: random.Random,
    *,
    n_choices: int,
    context_chars: int,
) -> list[ChoiceItem]:
    """Pick a worked step ``x op y = z`` as written among the same three numbers in other places.

    Distractors are the permutations of (x, y, z) that are false (``3 + 4 = 7`` also rules out
    ``4 + 3 = 7``), so choices have the same characters and only arithmetic sense tells them
    apart: which number is the result, how large a product or a sum is. A proxy trained on worked
    problems learns this long before it can compute a final answer.
    """
    found = {i: equations(texts[i]) for i in doc_ids}
    cands = {i: list(range(len(ms))) for i, ms in found.items()}

    def make(i: int, k: int) -> ChoiceItem | None:
        m = found[i][k]
        x, s1, op, s2, y, eq, z = m.groups()
        true = m.group(0)
        false = [
            f"{a}{s1}{op}{s2}{b}{eq}{c}"  # the document's spacing and "$", other numbers
            for a, b, c in itertools.permutations((x, y, z))
            if (a, b, c) != (x, y, z) and not _holds(a, op, b, c)
        ]
        if len(false) < n_choices - 1:
            return None
        prefix = texts[i][: m.start()]
        stripped = prefix.rstrip(" ")
        ws = prefix[len(stripped) :]
        choices, label = shuffle_choices(ws + true, [ws + f for f in rng.sample(false, n_choices - 1)], rng)
        return ChoiceItem(left_truncate(stripped, context_chars), choices, label, i)

    return round_robin(cands, n_items, rng, make)


def can_make(text: str) -> bool:
    """Whether a document has a worked step to ask for."""
    return bool(equations(text))
