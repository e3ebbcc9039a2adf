"""One part of the report, built once and rendered twice (HTML and markdown, :mod:`demix.report.render`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Section:
    """A part of the report: a title and blocks in order (paragraphs, tables, figures, bullet lists).

    Blocks are ``("text", str)``, ``("table", (header, rows))``, ``("figure", (file stem, png,
    caption))`` or ``("list", [str, ...])``.
    """

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def text(self, t: str) -> None:
        self.blocks.append(("text", t))

    def table(self, head: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (head, rows)))

    def figure(self, stem: str, png: bytes, caption: str) -> None:
        self.blocks.append(("figure", (stem, png, caption)))

    def bullets(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("list", list(items)))

    @property
    def figures(self) -> list[tuple[str, bytes, str]]:
        return [b for k, b in self.blocks if k == "figure"]
