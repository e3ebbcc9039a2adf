"""What every item kind shares: the item, the document split, truncation, shuffling, next-line items,
round-robin.

Everything here is pure (texts in, items out) and seeded only by the ``random.Random`` passed in, so
the same held-out text and seed give the same items in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A kind's builder: (texts, doc_ids, n_items, rng, *, n_choices, context_chars) -> items.
ItemBuilder = Callable[..., list["ChoiceItem"]]


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice item: the model scores ``context + choice`` for every choice."""

    context: str
    choices: tuple[str, ...]
    label: int  # index of the true choice
    doc: int  # held-out document it was made from

    def to_json(self) -> dict[str, object]:
        return {"context": self.context, "choices": list(self.choices), "label": self.label, "doc": self.doc}


def split_docs(n_docs: int, report_fraction: float, rng: random.Random) -> tuple[list[int], list[int]]:
    """Shuffle document indices and split them into disjoint (search, report) sides.

    Both sides get at least one document when there are two or more.
    """
    ids = list(range(n_docs))
    rng.shuffle(ids)
    n_report = min(max(1, round(n_docs * report_fraction)), n_docs - 1) if n_docs > 1 else 0
    return sorted(ids[n_report:]), sorted(ids[:n_report])


def truncate(text: str, max_chars: int) -> str:
    """The first ``max_chars`` characters of ``text``, cut at the last whitespace before the limit."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[:space] if space > max_chars // 2 else cut


def bpb_texts(
    texts: Sequence[str], n: int, max_chars: int, rng: random.Random, *, exclude: Sequence[str] = ()
) -> list[str]:
    """Up to ``n`` held-out documents (a seeded sample, in document order), each truncated.

    ``exclude``: documents (as returned by an earlier call) not to draw again, so a second call
    gives a disjoint set (the report half of bits-per-byte when it counts in the objective).
    """
    taken = set(exclude)
    ids = [i for i, t in enumerate(texts) if t.strip() and not (taken and truncate(t, max_chars) in taken)]
    if len(ids) > n:
        ids = sorted(rng.sample(ids, n))
    return [truncate(texts[i], max_chars) for i in ids]


def left_truncate(text: str, max_chars: int) -> str:
    """The last ``max_chars`` characters of ``text``, starting at a line (or word) boundary."""
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    nl = tail.find("\n")
    if 0 <= nl < max_chars // 2:
        return tail[nl + 1 :]
    sp = tail.find(" ")
    return tail[sp + 1 :] if 0 <= sp < max_chars // 2 else tail


def shuffle_choices(true: str, distractors: list[str], rng: random.Random) -> tuple[tuple[str, ...], int]:
    choices = [true, *distractors]
    order = list(range(len(choices)))
    rng.shuffle(order)
    return tuple(choices[i] for i in order), order.index(0)


def next_line_item(
    lines: list[str], k: int, others: list[str], rng: random.Random, context_chars: int, doc: int
) -> ChoiceItem:
    """Line ``k`` of a document among ``others``, after the lines before it; every choice ends as the
    line does in the document (a newline, none after its last line), so context + answer is the text."""
    context = left_truncate("\n".join(lines[:k]) + "\n", context_chars)
    end = "\n" if k + 1 < len(lines) else ""
    choices, label = shuffle_choices(lines[k] + end, [c + end for c in others], rng)
    return ChoiceItem(context, choices, label, doc)


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def round_robin(
    cands: dict[int, list[int]],
    n_items: int,
    rng: random.Random,
    make: Callable[[int, int], ChoiceItem | None],
) -> list[ChoiceItem]:
    """One item per document per round (documents shuffled), until ``n_items`` or no candidates left."""
    queues = {i: rng.sample(ks, len(ks)) for i, ks in cands.items() if ks}
    order = sorted(queues)
    rng.shuffle(order)
    items: list[ChoiceItem] = []
    while len(items) < n_items and any(queues.values()):
        for i in order:
            if len(items) >= n_items:
                break
            while queues[i]:
                item = make(i, queues[i].pop())
                if item is not None:
                    items.append(item)
                    break
    return items
