"""``cloze``: the last word of a sentence among sentence-final words from other documents.

The default for general text, and the last fallback of every kind: it takes any text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from demix.evaluate.items.common import ChoiceItem, left_truncate, round_robin, shuffle_choices

_SENTENCE_END = re.compile(r"(?<=[\s(\"'])([A-Za-z]{3,})(?=[.!?](?:\s|$))")


def cloze_items(
    texts: Sequence[str],
    doc_ids: Sequence[int],
    n_items: int,
    rng: random.Random,
    *,
    n_choices: int,
    context_chars: int,
) -> list[ChoiceItem]:
    """Pick the last word of a sentence among sentence-final words of similar length from other documents.

    Targets that already occur earlier in the passage are preferred (as in LAMBADA), so a model that
    has learned to use context can beat chance.
    """
    matches = {i: [m for m in _SENTENCE_END.finditer(texts[i]) if m.start() >= 40] for i in doc_ids}
    words: dict[str, set[int]] = {}
    for i, ms in matches.items():
        for m in ms:
            words.setdefault(m.group(1), set()).add(i)
    vocab = sorted(words)
    cands: dict[int, list[int]] = {}
    for i, ms in matches.items():
        text = texts[i]
        seen = [
            k
            for k, m in enumerate(ms)
            if re.search(rf"\b{m.group(1)}\b", text[max(0, m.start() - context_chars) : m.start()])
        ]
        cands[i] = seen if seen else list(range(len(ms)))

    def make(i: int, k: int) -> ChoiceItem | None:
        m = matches[i][k]
        word = m.group(1)
        near = [
            w for w in vocab if abs(len(w) - len(word)) <= 2 and w.lower() != word.lower() and words[w] != {i}
        ]
        if len(near) < n_choices - 1:
            near = [w for w in vocab if w.lower() != word.lower() and words[w] != {i}]
        if len(near) < n_choices - 1:
            return None
        prefix = texts[i][: m.start()]
        stripped = prefix.rstrip()
        ws = prefix[len(stripped) :]
        choices, label = shuffle_choices(ws + word, [ws + w for w in rng.sample(near, n_choices - 1)], rng)
        return ChoiceItem(left_truncate(stripped, context_chars), choices, label, i)

    return round_robin(cands, n_items, rng, make)
