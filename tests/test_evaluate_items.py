"""The built-in item builders on hand-written documents (pure: texts in, items out)."""

from __future__ import annotations

import random

from demix.evaluate.items import choose_kind, default_kind, usable
from demix.evaluate.items.equation import equation_items
from demix.evaluate.items.order import order_items

MATH = [
    "Question: Ann buys 4 pens at $3 each.\nAnswer: The pens cost 4 * 3 = $12.\n#### 12",
    "Question: Evaluate (12 + 30) * 2 - 5.\nAnswer: 12 + 30 = 42.\n42 * 2 = 84.\n84 - 5 = 79.\n#### 79",
    "Question: Share 160 in the ratio 4:4.\nAnswer: 4 + 4 = 8 parts.\nEach part is 160 / 8 = 20.\n#### 80",
]
CODE = [
    "def area(w, h):\n    if w < 0 or h < 0:\n        raise ValueError(w)\n    return w * h\n",
    "for name in sorted(names):\n    print(name, len(name))\n    total = total + len(name)\n",
]


def test_equation_items_keep_the_numbers_and_reject_true_permutations() -> None:
    items = equation_items(MATH, range(3), 10, random.Random(0), n_choices=3, context_chars=200)
    # 4 * 3 = 12, 12 + 30 = 42, 42 * 2 = 84, 84 - 5 = 79, 160 / 8 = 20; "4 + 4 = 8" repeats a number.
    assert len(items) == 5
    for it in items:
        true = it.choices[it.label]
        assert (it.context + true) in MATH[it.doc]
        x, op, y, _, z = true.replace("$", "").split()
        for c in it.choices:
            a, o, b, _, r = c.replace("$", "").split()
            assert o == op and sorted((a, b, r)) == sorted((x, y, z))
            if c != true:  # every distractor is false arithmetic, so exactly one choice holds
                assert not (o == "*" and float(a) * float(b) == float(r))
                assert not (o == "+" and float(a) + float(b) == float(r))
    dollar = next(it for it in items if "$" in it.choices[it.label])
    assert all(c.split()[-1].startswith("$") for c in dollar.choices)  # the document's "$12" kept


def test_equation_items_need_enough_false_permutations() -> None:
    # For "+" every permutation but the commuted one is false: 4 of 5, so 5 choices is too many.
    items = equation_items(["x: 12 + 30 = 42."], [0], 5, random.Random(0), n_choices=6, context_chars=50)
    assert items == []
    assert (
        len(equation_items(["x: 12 + 30 = 42."], [0], 5, random.Random(0), n_choices=5, context_chars=50))
        == 1
    )


def test_order_items_are_the_line_as_written_among_its_tokens_reordered() -> None:
    items = order_items(CODE, range(2), 10, random.Random(1), n_choices=4, context_chars=500)
    # Lines with 3 to 16 tokens after the first: "if w < 0 ...", "return w * h", "total = total + ...".
    assert len(items) == 3
    for it in items:
        true = it.choices[it.label]
        assert (it.context + true) in CODE[it.doc]
        pad = true[: len(true) - len(true.lstrip())]
        assert len(set(it.choices)) == 4
        for c in it.choices:
            assert c.startswith(pad) and sorted(c.split()) == sorted(true.split()) and len(c) == len(true)


def test_next_line_items_end_as_the_document_does() -> None:
    """A document's last line has no newline after it: the choices carry none either, so context +
    answer is the document as written (built-in documents are stripped; a file's last line is one)."""
    from demix.evaluate.items.code import code_items

    docs = [d.rstrip("\n") for d in CODE]
    for build in (order_items, code_items):
        items = build(docs, range(2), 10, random.Random(1), n_choices=2, context_chars=500)
        last = [it for it in items if it.context.count("\n") == docs[it.doc].count("\n")]
        assert last, build.__name__  # an item on a last line was drawn
        for it in items:
            assert it.context + it.choices[it.label] in docs[it.doc], build.__name__
            ends = {c.endswith("\n") for c in it.choices}
            assert ends == {it not in last}, build.__name__


def test_kinds_by_group_and_fallbacks() -> None:
    assert (default_kind("math"), default_kind("code"), default_kind("general")) == (
        "equation",
        "order",
        "cloze",
    )
    prose = ["It was a dark and stormy night; the rain fell in torrents, except at occasional intervals."] * 4
    assert usable("equation", MATH) and not usable("equation", prose)
    assert choose_kind("equation", prose) == "cloze"
    answers_only = ["Question: What is six times seven?\nAnswer: forty-two.\n#### 42"] * 3
    assert choose_kind("equation", answers_only) == "math"
    assert choose_kind("order", CODE) == "order"
    assert choose_kind("order", ["one_very_long_token_per_line\n" * 3] * 3) == "code"


def test_equation_items_keep_the_documents_spacing() -> None:
    gsm = ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72"]
    (item,) = equation_items(gsm, [0], 5, random.Random(0), n_choices=4, context_chars=100)
    assert item.context.endswith("<<") and item.choices[item.label] == "48/2=24"
    assert "48/24=2" not in item.choices  # true as well, so never a distractor
    assert all(len(c) == 7 and c.count("/") == 1 and c.count("=") == 1 for c in item.choices)
