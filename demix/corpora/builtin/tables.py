"""``tables``: reference data tables that ship inside Python, in their own file formats.

The Unicode character database (``unicodedata``, one ``UnicodeData.txt``-style table per block of
64 code points), the single-byte codec tables of ``encodings`` (unicode.org mapping-file format) and
the HTML5 named character references (``html.entities``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import unicodedata
from functools import cache

from demix.corpora.builtin._stdlib import take_bytes
from demix.corpora.builtin.registry import register

BLOCK = 64  # code points per Unicode table document
CODEC_ROWS = 128  # bytes per codec table document (two per codec)
# Huge ranges of algorithmically named characters say nothing new after their first row.
_SKIP_PREFIXES = (
    "CJK UNIFIED IDEOGRAPH-",
    "CJK COMPATIBILITY IDEOGRAPH-",
    "HANGUL SYLLABLE ",
    "TANGUT IDEOGRAPH-",
    "KHITAN SMALL SCRIPT CHARACTER-",
    "NUSHU CHARACTER-",
)


def _unicode_row(cp: int) -> str | None:
    ch = chr(cp)
    cat = unicodedata.category(ch)
    if cat in ("Cn", "Co", "Cs"):
        return None
    name = unicodedata.name(ch, "")
    if name.startswith(_SKIP_PREFIXES):
        return None
    shown = ch if ch.isprintable() and cat[0] != "M" else ""
    fields = (
        f"{cp:04X}",
        shown,
        name,
        cat,
        unicodedata.bidirectional(ch),
        str(unicodedata.combining(ch)),
        unicodedata.decomposition(ch),
        str(unicodedata.decimal(ch, "")),
        str(unicodedata.digit(ch, "")),
        str(unicodedata.numeric(ch, "")),
        "Y" if unicodedata.mirrored(ch) else "N",
        unicodedata.east_asian_width(ch),
    )
    return ";".join(fields)


def unicode_tables() -> list[str]:
    header = "# code;char;name;category;bidi;combining;decomposition;decimal;digit;numeric;mirrored;width"
    docs = []
    for start in range(0, sys.maxunicode + 1, BLOCK):
        rows = [row for cp in range(start, start + BLOCK) if (row := _unicode_row(cp)) is not None]
        if len(rows) >= 4:
            title = f"# Unicode {unicodedata.unidata_version}, U+{start:04X}..U+{start + BLOCK - 1:04X}"
            docs.append("\n".join([title, header, *rows]))
    return docs


def codec_tables() -> list[str]:
    import encodings

    docs = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(encodings.__path__)):
        try:
            table = getattr(importlib.import_module(f"encodings.{mod}"), "decoding_table", None)
        except ImportError:
            continue
        if not isinstance(table, str) or len(table) != 256:
            continue
        for start in range(0, 256, CODEC_ROWS):
            rows = [f"# {mod}: byte -> Unicode, 0x{start:02X}..0x{start + CODEC_ROWS - 1:02X}"]
            rows.append("# byte\tunicode\tname")
            for byte in range(start, start + CODEC_ROWS):
                ch = table[byte]
                if ch == "\ufffe":
                    rows.append(f"0x{byte:02X}\t\t#UNDEFINED")
                else:
                    rows.append(f"0x{byte:02X}\t0x{ord(ch):04X}\t#{unicodedata.name(ch, '<control>')}")
            docs.append("\n".join(rows))
    return docs


def entity_tables() -> list[str]:
    from html.entities import html5

    rows = [
        f"&{name}\tU+{'+U+'.join(f'{ord(c):04X}' for c in chars)}\t{unicodedata.name(chars[0], '')}"
        for name, chars in sorted(html5.items())
        if name.endswith(";")
    ]
    return [
        "\n".join(["# HTML5 named character references", "# entity\tcode points\tname", *rows[i : i + 64]])
        for i in range(0, len(rows), 64)
    ]


@cache
def table_documents() -> tuple[str, ...]:
    return tuple(unicode_tables() + codec_tables() + entity_tables())


@register(
    "tables",
    group="code",
    description="data tables: Unicode database, codec mapping tables, HTML5 entities",
)
def build_tables(max_bytes: int, seed: int) -> list[str]:
    return take_bytes(list(table_documents()), max_bytes, seed, "tables")
