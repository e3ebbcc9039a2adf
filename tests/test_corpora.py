"""Candidate sources (local files through `datasets`), built-in offline domains, near-duplicate checks."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from demix.config import CorporaConfig, SourceConfig
from demix.corpora import build_builtin, builtin_domain, builtin_names, jaccard, near_duplicates
from demix.corpora.builtin.code import strip_docs_and_comments
from demix.corpora.builtin.math import TEMPLATES, format_problem
from demix.data.sources import load_source
from demix.errors import DataError

CORPORA = CorporaConfig()
SMALL = 200_000


# ---- built-in domains ----------------------------------------------------------------------------


def test_at_least_five_builtin_domains_with_groups() -> None:
    names = builtin_names()
    assert len(names) >= 5
    groups = {builtin_domain(n).group for n in names}
    assert {"general", "code", "math"} <= groups


def test_registry_matches_the_names_the_config_accepts() -> None:
    from demix.config.data import BUILTIN_DOMAINS
    from demix.corpora.builtin.registry import register

    assert builtin_names() == list(BUILTIN_DOMAINS)  # same names, same order (error messages list them)
    with pytest.raises(ValueError, match="BUILTIN_DOMAINS"):
        register("poetry", group="general", description="not in the config's list")


@pytest.mark.parametrize("name", ["prose", "code", "math", "comments", "tables"])
def test_builtin_domain_size_and_determinism(name: str) -> None:
    docs = build_builtin(name, SMALL, seed=0)
    size = sum(len(d.encode()) for d in docs)
    assert SMALL <= size < SMALL + 20_000  # about max_bytes, one document over at most
    assert len(docs) >= 40  # enough to hold some out
    assert docs == build_builtin(name, SMALL, seed=0)
    assert all(d.strip() for d in docs)


def test_seed_changes_the_selection() -> None:
    assert build_builtin("math", 50_000, seed=0) != build_builtin("math", 50_000, seed=1)
    assert build_builtin("prose", 50_000, seed=0) != build_builtin("prose", 50_000, seed=1)


def _comments(doc: str) -> list[str] | None:
    """The comment tokens of a Python document; None if it does not tokenize."""
    import io
    import tokenize

    try:
        return [
            t.string
            for t in tokenize.generate_tokens(io.StringIO(doc).readline)
            if t.type == tokenize.COMMENT
        ]
    except (tokenize.TokenError, SyntaxError):
        return None


def test_code_domain_has_no_docstrings_or_comments() -> None:
    docs = build_builtin("code", SMALL, seed=0)
    # A document of whole top-level statements tokenizes, and a "#" line inside a string (a verbose
    # regex: textwrap's, drawn on Python 3.12) is code, not a comment. A statement longer than a
    # document is cut by lines (pydoc's topics); those pieces are checked line by line.
    found = [_comments(d) for d in docs]
    assert sum(c is not None for c in found) >= len(docs) / 2
    assert not [c for c in found if c], [c for c in found if c][:3]
    pieces = [d for d, c in zip(docs, found, strict=True) if c is None]
    assert not any(line.lstrip().startswith("#") for d in pieces for line in d.split("\n"))
    prose = build_builtin("prose", 10**9, seed=0)
    # No code document repeats a paragraph of the prose domain.
    # (Short sentences may legitimately be string literals, e.g. error messages.)
    paragraphs = sorted({p.strip() for d in prose for p in d.split("\n\n") if len(p.split()) >= 20})
    code_text = "\n".join(build_builtin("code", 1_000_000, seed=0))
    assert len(paragraphs) > 1000 and not [p for p in paragraphs if p in code_text]


def test_strip_docs_and_comments_keeps_code_and_strings() -> None:
    src = '''"""Module doc."""
import os  # trailing comment

# a full-line comment
def f(x):
    """Only a docstring."""


def g(y):
    """Doc with # hash and a ünïcode tail."""
    s = "not # a comment"
    return s + y  # another
'''
    out = strip_docs_and_comments(src)
    assert out is not None
    ast.parse(out)
    assert "Module doc" not in out and "Only a docstring" not in out and "hash and" not in out
    assert "comment" not in out.replace("not # a comment", "")
    assert '"not # a comment"' in out
    assert "def f(x):\n    pass" in out
    assert "return s + y\n" in out


def test_prose_has_no_doctest_examples() -> None:
    assert not any(">>>" in d for d in build_builtin("prose", SMALL, seed=0))


def test_math_answers_are_right() -> None:
    import random

    r = random.Random(7)
    for template in TEMPLATES:
        for _ in range(20):
            doc = format_problem(template(r))
            question, _, answer = doc.partition("\nAnswer: ")
            assert question.startswith("Question: ")
            final = answer.rsplit("\n#### ", 1)[1]
            assert re.fullmatch(r"-?\d+(/\d+)?", final), doc
            if template.__name__ == "_arithmetic":
                expr = question.removeprefix("Question: Evaluate ").rstrip(".")
                assert eval(expr) == int(final)  # the question is plain arithmetic
            if template.__name__ == "_linear":
                a, sign, b, c = re.match(
                    r"Question: Solve for x: (\d+)x ([+-]) (\d+) = (-?\d+)", doc
                ).groups()  # type: ignore[union-attr]
                x = int(final)
                assert int(a) * x + (int(b) if sign == "+" else -int(b)) == int(c)


# ---- near-duplicates -----------------------------------------------------------------------------


def test_near_duplicates_flags_edited_copies_only() -> None:
    base = build_builtin("prose", 60_000, seed=0)
    long_docs = [d for d in base if len(d.split()) > 150][:10]
    edited = long_docs[0].replace("the", "teh", 1) + " one more sentence at the end."
    unrelated = build_builtin("math", 2_000, seed=3)[0]
    assert jaccard(edited, long_docs[0]) > 0.9
    flags = near_duplicates([edited, unrelated], [long_docs[1:], long_docs[:1]], threshold=0.8)
    assert flags.tolist() == [True, False]
    # Candidates are also checked against each other.
    assert near_duplicates([long_docs[2], long_docs[2] + " x"], [], threshold=0.8).tolist() == [True, True]


# ---- local sources -------------------------------------------------------------------------------


def _src(**kw: object) -> SourceConfig:
    return SourceConfig.model_validate(kw)


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_local_formats(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"content": f"document number {i}", "id": i} for i in range(30)]
    _write_jsonl(tmp_path / "a.jsonl", rows)
    (tmp_path / "b.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    (tmp_path / "txt").mkdir()
    for i in range(3):
        (tmp_path / "txt" / f"{i}.txt").write_text(f"text file {i}\nsecond line\n")
    for name in ("a.jsonl", "b.json", "c.parquet"):
        ds = load_source(_src(path=tmp_path / name, text_field="content"), "k", CORPORA)
        assert ds.column_names == ["text"] and len(ds) == 30 and ds[3]["text"] == "document number 3"
    ds = load_source(_src(path=tmp_path / "txt"), "k", CORPORA)
    assert sorted(ds["text"]) == [f"text file {i}\nsecond line\n" for i in range(3)]
    ds = load_source(_src(path=str(tmp_path / "txt" / "*.txt"), sample_by="line"), "k", CORPORA)
    assert len(ds) == 6
    ds = load_source(_src(path=tmp_path / "a.jsonl", text_field="content", max_docs=7), "k", CORPORA)
    assert len(ds) == 7
    ds = load_source(_src(path=tmp_path / "a.jsonl", text_field="content", max_bytes=40), "k", CORPORA)
    assert len(ds) == 3  # 17 + 17 bytes < 40 <= 17 + 17 + 17


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "no such file or directory"),
        ("empty", "is empty"),
        ("blank", "no non-empty documents"),
        ("nofield", "has no field 'text'"),
        ("broken", "cannot read"),
        ("badglob", "matches no files"),
        ("badsuffix", "cannot read"),
    ],
)
def test_bad_sources_name_the_source(tmp_path: Path, setup: str, expected: str) -> None:
    path: str | Path = tmp_path / "x.jsonl"
    if setup == "empty":
        Path(path).write_text("")
    elif setup == "blank":
        _write_jsonl(Path(path), [{"text": "  "}, {"text": ""}])
    elif setup == "nofield":
        _write_jsonl(Path(path), [{"body": "hello"}])
    elif setup == "broken":
        Path(path).write_text('{"text": "ok"}\n{"text": broken\n')
    elif setup == "badglob":
        path = str(tmp_path / "nothing-*.jsonl")
    elif setup == "badsuffix":
        path = tmp_path / "x.csv"
        path.write_text("text\nhello\n")
    with pytest.raises(DataError) as err:
        load_source(_src(path=path), "corpora.candidates[mine].sources[0]", CORPORA)
    msg = str(err.value)
    assert expected in msg and "corpora.candidates[mine].sources[0]" in msg
    assert "\n" not in msg


def test_hub_source_offline_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"sources\[0\]\.hf: cannot load hf:no-such-org/no-such-set"):
        load_source(_src(hf="no-such-org/no-such-set"), "corpora.candidates[x].sources[0]", CORPORA)


def test_unknown_builtin_is_rejected_by_the_config() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="no built-in domain 'poetry'"):
        _src(builtin="poetry")
