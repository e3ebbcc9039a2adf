"""Built-in evaluation items made from held-out documents, behind a registry of kinds (pure).

Each accuracy item is a multiple-choice question about a held-out document; one module per kind
builds them (:mod:`~demix.evaluate.items.common` holds what they share):

- ``equation`` (math default): a worked step as written among the same numbers rearranged;
- ``order`` (code default): the next line as written among the same tokens in another order;
- ``math``: the final answer of a worked problem among numbers from its steps and other problems;
- ``code``: the true next line among lines from other files;
- ``cloze`` (everything else): the last word of a sentence among sentence-final words elsewhere.

``equation`` and ``order`` are what a small proxy moves above chance; ``math`` and ``code`` need
more model. Distractors come from the same side (search or report) of the document split, so the
two sides share no text.

Example::

    kind = choose_kind(default_kind("math"), texts)  # "equation", or a fallback the text supports
    items = BUILDERS[kind](texts, doc_ids, 100, random.Random(0), n_choices=4, context_chars=600)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from demix.evaluate.items import cloze, code, equation, math, order
from demix.evaluate.items.common import (
    ChoiceItem,
    ItemBuilder,
    bpb_texts,
    left_truncate,
    round_robin,
    shuffle_choices,
    split_docs,
    truncate,
)

KINDS = ("equation", "order", "math", "code", "cloze")
BUILDERS: dict[str, ItemBuilder] = {
    "equation": equation.equation_items,
    "order": order.order_items,
    "math": math.math_items,
    "code": code.code_items,
    "cloze": cloze.cloze_items,
}
# Which documents can make items of a kind; a kind missing here takes any text.
_CAN_MAKE: dict[str, Callable[[str], bool]] = {
    "math": math.can_make,
    "equation": equation.can_make,
    "order": order.can_make,
}
# When a domain's held-out text can't make items of a kind, the next one that can is used.
FALLBACK: dict[str, tuple[str, ...]] = {
    "equation": ("math", "cloze"),
    "math": ("cloze",),
    "order": ("code",),
    "code": (),
    "cloze": (),
}


def default_kind(group: str | None) -> str:
    """The accuracy task a domain gets from its capability group."""
    return {"math": "equation", "code": "order"}.get(group or "", "cloze")


def choose_kind(kind: str, texts: Sequence[str]) -> str:
    """``kind`` when the held-out text supports it, else its first usable fallback."""
    return next(k for k in (kind, *FALLBACK[kind], "cloze") if usable(k, texts))


def usable(kind: str, texts: Sequence[str]) -> bool:
    """Whether at least half the held-out documents (and two) can make items of ``kind``.

    ``math`` needs final answers, ``equation`` worked steps, ``order`` short single-spaced lines;
    ``code`` and ``cloze`` take any text.
    """
    test = _CAN_MAKE.get(kind)
    if test is None:
        return True
    return sum(test(t) for t in texts) >= max(2, len(texts) // 2)


__all__ = [
    "BUILDERS",
    "FALLBACK",
    "KINDS",
    "ChoiceItem",
    "ItemBuilder",
    "bpb_texts",
    "choose_kind",
    "default_kind",
    "left_truncate",
    "round_robin",
    "shuffle_choices",
    "split_docs",
    "truncate",
    "usable",
]
