"""``math``: the final answer of a worked problem among numbers of the same length.

Needs more model than the demo's proxies have; the math default is ``equation``
(:mod:`demix.evaluate.items.equation`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from demix.evaluate.items.common import ChoiceItem, left_truncate, shuffle_choices

_NUMBER = re.compile(r"-?\d+(?:[./]\d+)?")
_GSM_ANSWER = re.compile(r"####\s*(-?\d+(?:[./]\d+)?)\s*$")
_ANSWER_IS = re.compile(r"answer is:?\s*\$?(-?\d+(?:[./]\d+)?)\.?\s*$", re.IGNORECASE)


def parse_answer(text: str) -> tuple[int, str] | None:
    """(offset, answer) of a document's final numeric answer (GSM8K ``#### x`` or "the answer is x")."""
    for pattern in (_GSM_ANSWER, _ANSWER_IS):
        m = pattern.search(text.rstrip())
        if m:
            return m.start(1), m.group(1)
    return None


def _perturb(answer: str, rng: random.Random) -> str:
    """A different number of the same length: one digit replaced (a non-leading one when there is one)."""
    digits = [i for i, c in enumerate(answer) if c.isdigit()]
    inner = [i for i in digits if i > 0 and answer[i - 1].isdigit()]
    i = rng.choice(inner or digits)
    lead = i == 0 or not answer[i - 1].isdigit()
    repl = [d for d in "0123456789" if d != answer[i] and not (lead and d == "0")]
    return answer[:i] + rng.choice(repl) + answer[i + 1 :]


def math_items(
    texts: Sequence[str],
    doc_ids: Sequence[int],
    n_items: int,
    rng: random.Random,
    *,
    n_choices: int,
    context_chars: int,
) -> list[ChoiceItem]:
    """Pick the final answer of a worked problem among numbers of the same length.

    Distractors: one number from the problem's own steps, answers of other problems, then the true
    answer with one digit changed; all as long as the answer, so that summed log-likelihood (``acc``)
    is not biased toward short numbers.
    """
    parsed = {i: a for i in doc_ids if (a := parse_answer(texts[i])) is not None}
    others = sorted({a for _, a in parsed.values()})
    ids = list(parsed)
    rng.shuffle(ids)
    items: list[ChoiceItem] = []
    for i in ids[: max(0, n_items)]:
        offset, answer = parsed[i]
        prefix = texts[i][:offset].rstrip(" ")
        same = [x for x in dict.fromkeys(_NUMBER.findall(prefix)) if x != answer and len(x) == len(answer)]
        rng.shuffle(same)
        distract = same[:1]
        pool = [a for a in others if a != answer and a not in distract and len(a) == len(answer)]
        distract += rng.sample(pool, min(len(pool), n_choices - 1 - len(distract)))
        for _ in range(100):
            if len(distract) >= n_choices - 1:
                break
            cand = _perturb(answer, rng)
            if cand != answer and cand not in distract:
                distract.append(cand)
        if len(distract) < n_choices - 1:
            continue
        choices, label = shuffle_choices(" " + answer, [" " + d for d in distract], rng)
        items.append(ChoiceItem(left_truncate(prefix, context_chars), choices, label, i))
    return items


def can_make(text: str) -> bool:
    """Whether a document has a final answer to ask for."""
    return parse_answer(text) is not None
