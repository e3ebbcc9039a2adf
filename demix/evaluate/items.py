"""Built-in evaluation items made from held-out documents (pure: texts in, items out).

Each accuracy item is a multiple-choice question about a held-out document. Two kinds are what a
small proxy (1M-100M parameters) moves well above chance by learning its domain, and are the
defaults: ``equation`` (math: a worked step as written among the same numbers in other places) and
``order`` (code: the next line as written among the same tokens in another order). Their choices
have the same bytes, so summed log-likelihood is not biased by length. Three kinds need more model:
``math`` (the final answer of a worked problem among numbers from its steps and from other
problems), ``code`` (the true next line among lines from other files) and ``cloze`` (the last word
of a sentence among sentence-final words from other documents; the default for general text).
Distractors come from the same side (search or report) of the document split, so the two sides
share no text.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

KINDS = ("equation", "order", "math", "code", "cloze")
_NUMBER = re.compile(r"-?\d+(?:[./]\d+)?")
_GSM_ANSWER = re.compile(r"####\s*(-?\d+(?:[./]\d+)?)\s*$")
_ANSWER_IS = re.compile(r"answer is:?\s*\$?(-?\d+(?:[./]\d+)?)\.?\s*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[\s(\"'])([A-Za-z]{3,})(?=[.!?](?:\s|$))")
_NUM = r"\d+(?:\.\d+)?"
# x op y = z with optional single spaces ("42 * 2 = 84", GSM8K's "<<48/2=24>>"), x not inside a fraction
_EQUATION = re.compile(rf"(?<![\w.)/])({_NUM})( ?)([-+*/×])( ?)({_NUM})( ?= ?\$?)({_NUM})(?![\w/(])")
_ORDER_WORDS = (3, 16)  # lines with this many whitespace-separated tokens make order items


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


def _left_truncate(text: str, max_chars: int) -> str:
    """The last ``max_chars`` characters of ``text``, starting at a line (or word) boundary."""
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    nl = tail.find("\n")
    if 0 <= nl < max_chars // 2:
        return tail[nl + 1 :]
    sp = tail.find(" ")
    return tail[sp + 1 :] if 0 <= sp < max_chars // 2 else tail


def _shuffle_choices(true: str, distractors: list[str], rng: random.Random) -> tuple[tuple[str, ...], int]:
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
        choices, label = _shuffle_choices(" " + answer, [" " + d for d in distract], rng)
        items.append(ChoiceItem(_left_truncate(prefix, context_chars), choices, label, i))
    return items


# ---- code: the true next line ------------------------------------------------------------------


def _indent(line: str) -> int:
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
                pool.setdefault(_indent(line), []).append((i, line))
    flat = [x for v in pool.values() for x in v]
    cands = {
        i: [k for k in range(1, len(ls)) if _good_line(ls[k]) and ls[k - 1].strip()]
        for i, ls in lines.items()
    }

    def make(i: int, k: int) -> ChoiceItem | None:
        true = lines[i][k]
        same = [ln for d, ln in pool.get(_indent(true), []) if d != i and ln.strip() != true.strip()]
        chosen = list(dict.fromkeys(rng.sample(same, min(len(same), 4 * n_choices))))[: n_choices - 1]
        if len(chosen) < n_choices - 1:
            rest = [ln for d, ln in flat if d != i and ln.strip() != true.strip() and ln not in chosen]
            chosen += list(dict.fromkeys(rng.sample(rest, min(len(rest), 4 * n_choices))))[
                : n_choices - 1 - len(chosen)
            ]
        if len(chosen) < n_choices - 1:
            return None
        context = _left_truncate("\n".join(lines[i][:k]) + "\n", context_chars)
        choices, label = _shuffle_choices(true + "\n", [c + "\n" for c in chosen], rng)
        return ChoiceItem(context, choices, label, i)

    return _round_robin(cands, n_items, rng, make)


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
        choices, label = _shuffle_choices(ws + word, [ws + w for w in rng.sample(near, n_choices - 1)], rng)
        return ChoiceItem(_left_truncate(stripped, context_chars), choices, label, i)

    return _round_robin(cands, n_items, rng, make)


def _round_robin(
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


# ---- equation: a worked step as written ----------------------------------------------------------


def _holds(a: str, op: str, b: str, c: str) -> bool:
    x, y, z = float(a), float(b), float(c)
    if op == "/":
        return y != 0 and abs(x / y - z) < 1e-9
    got = {"+": x + y, "-": x - y, "*": x * y, "×": x * y}[op]
    return abs(got - z) < 1e-9


def _equations(text: str) -> list[re.Match[str]]:
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
    found = {i: _equations(texts[i]) for i in doc_ids}
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
        choices, label = _shuffle_choices(ws + true, [ws + f for f in rng.sample(false, n_choices - 1)], rng)
        return ChoiceItem(_left_truncate(stripped, context_chars), choices, label, i)

    return _round_robin(cands, n_items, rng, make)


# ---- order: the next line as written ---------------------------------------------------------------


def _orderable(line: str) -> bool:
    """A line whose tokens are single-space separated (so a reordering has the same bytes)."""
    words = line.split()
    lo, hi = _ORDER_WORDS
    return lo <= len(words) <= hi and len(set(words)) > 1 and line == " " * _indent(line) + " ".join(words)


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
        i: [k for k in range(1, len(ls)) if _orderable(ls[k]) and ls[k - 1].strip()]
        for i, ls in lines.items()
    }

    def make(i: int, k: int) -> ChoiceItem | None:
        true = lines[i][k]
        pad, words = " " * _indent(true), true.split()
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
        context = _left_truncate("\n".join(lines[i][:k]) + "\n", context_chars)
        choices, label = _shuffle_choices(true + "\n", [f + "\n" for f in false], rng)
        return ChoiceItem(context, choices, label, i)

    return _round_robin(cands, n_items, rng, make)


def usable(kind: str, texts: Sequence[str]) -> bool:
    """Whether at least half the held-out documents (and two) can make items of ``kind``.

    ``math`` needs final answers, ``equation`` worked steps, ``order`` short single-spaced lines;
    ``code`` and ``cloze`` take any text.
    """
    test: dict[str, Callable[[str], bool]] = {
        "math": lambda t: parse_answer(t) is not None,
        "equation": lambda t: bool(_equations(t)),
        "order": lambda t: any(_orderable(line) for line in t.split("\n")[1:]),
    }
    if kind not in test:
        return True
    return sum(test[kind](t) for t in texts) >= max(2, len(texts) // 2)


BUILDERS: dict[str, Callable[..., list[ChoiceItem]]] = {
    "equation": equation_items,
    "order": order_items,
    "math": math_items,
    "code": code_items,
    "cloze": cloze_items,
}
