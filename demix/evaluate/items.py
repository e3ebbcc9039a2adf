"""Built-in evaluation items made from held-out documents (pure: texts in, items out).

Each accuracy item is a multiple-choice question about a held-out document. This module holds what
every kind shares (the item, the document split, truncation, shuffling, round-robin over documents)
and three kinds that need more model than the demo's: ``math`` (the final answer of a worked
problem among numbers from its steps and from other problems), ``code`` (the true next line among
lines from other files) and ``cloze`` (the last word of a sentence among sentence-final words from
other documents; the default for general text). :mod:`demix.evaluate.permuted` has the two kinds a
small proxy moves (``equation``, ``order``); :mod:`demix.evaluate.kinds` the registry. Distractors
come from the same side (search or report) of the document split, so the two sides share no text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_NUMBER = re.compile(r"-?\d+(?:[./]\d+)?")
_GSM_ANSWER = re.compile(r"####\s*(-?\d+(?:[./]\d+)?)\s*$")
_ANSWER_IS = re.compile(r"answer is:?\s*\$?(-?\d+(?:[./]\d+)?)\.?\s*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[\s(\"'])([A-Za-z]{3,})(?=[.!?](?:\s|$))")


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


# ---- math: the final answer of a worked problem ------------------------------------------------


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


# ---- code: the true next line ------------------------------------------------------------------


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


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
        context = left_truncate("\n".join(lines[i][:k]) + "\n", context_chars)
        choices, label = shuffle_choices(true + "\n", [c + "\n" for c in chosen], rng)
        return ChoiceItem(context, choices, label, i)

    return round_robin(cands, n_items, rng, make)


# ---- cloze: the last word of a sentence ---------------------------------------------------------


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
