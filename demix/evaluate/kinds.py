"""The registry of accuracy-item kinds: builders, defaults by capability group, fallbacks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from demix.evaluate.items import ChoiceItem, cloze_items, code_items, math_items, parse_answer
from demix.evaluate.permuted import equation_items, equations, order_items, orderable

KINDS = ("equation", "order", "math", "code", "cloze")
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
    test: dict[str, Callable[[str], bool]] = {
        "math": lambda t: parse_answer(t) is not None,
        "equation": lambda t: bool(equations(t)),
        "order": lambda t: any(orderable(line) for line in t.split("\n")[1:]),
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
