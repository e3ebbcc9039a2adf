"""Export's pure pieces: token plans, share rounding and every file format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from demix.export.formats import FORMATS, render
from demix.export.plan import SCHEMA, round_shares, split_tokens, token_plan

TRIALS = """trial,state,baseline,w:a,w:b,mix:a,mix:b,loss:a,loss:b,metric:t1,objective,objective:g1,objective:g2,merge_s,eval_s
0,COMPLETE,uniform,0.5,0.5,0.75,0.25,1.0,2.0,0.3,0.5,0.4,0.6,0.1,0.2
1,COMPLETE,,0.2,0.8,0.6,0.4,1.1,1.9,0.4,0.7,0.9,0.5,0.1,0.2
2,FAIL,,0.1,0.9,0.55,0.45,,,,,,,0.1,
3,COMPLETE,,0.9,0.1,0.95,0.05,0.9,2.2,0.2,0.6,0.3,0.9,0.1,0.2
"""


def test_round_shares_and_split_tokens_sum_exactly() -> None:
    r = np.array([1 / 3, 1 / 3, 1 / 3])
    rs = round_shares(r)
    assert rs.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.abs(rs - r) <= 1e-6)
    t = split_tokens(rs, 100)
    assert t.sum() == 100 and sorted(t.tolist()) == [33, 33, 34]


def test_token_plan_epochs_and_cap_warning() -> None:
    plan = token_plan(["a", "b"], np.array([0.8, 0.2]), 1000, np.array([100.0, 1000.0]), max_epochs=4)
    assert plan.tokens.tolist() == [800, 200]
    np.testing.assert_allclose(plan.epochs, [8.0, 0.2])
    assert plan.over_cap == ["a"]
    assert plan.max_target == 500  # 4 epochs * 100 tokens / 0.8
    assert any("8.0 epochs" in w and "a:" in w for w in plan.warnings)
    assert any("500" in w for w in plan.warnings)
    ok = token_plan(["a", "b"], np.array([0.8, 0.2]), 400, np.array([100.0, 1000.0]), max_epochs=4)
    assert ok.warnings == [] and ok.over_cap == []
    unknown = token_plan(["a", "b"], np.array([0.5, 0.5]), 10, None, max_epochs=4)
    assert unknown.epochs is None and unknown.tokens.sum() == 10


def _doc() -> dict:
    return {
        "schema": SCHEMA,
        "name": "demo",
        "choice": "surrogate_topk",
        "domains": ["prose", "code", "math"],
        "general": "prose",
        "beta": 0.5,
        "ratios": {"prose": 0.6, "code": 0.3, "math": 0.1},
        "target_tokens": 1000,
        "tokens": {"prose": 600, "code": 300, "math": 100},
        "available_tokens": {"prose": 1000, "code": 100, "math": 1000},
        "epochs": {"prose": 0.6, "code": 3.0, "math": 0.1},
        "max_epochs": 4.0,
        "max_target_tokens": 1333,
        "merge_weights": {"prose": 0.2, "code": 0.6, "math": 0.2},
        "interval": {"prose": [0.55, 0.65], "code": [0.25, 0.35], "math": [0.05, 0.15]},
        "predicted": {"surrogate_objective": 0.8},
        "alternatives": {"best_trial": {"r": {"prose": 0.7, "code": 0.2, "math": 0.1}, "predicted": {}}},
        "megatron_prefix": "/data/{domain}_text_document",
        "sources": {"prose": ["builtin:prose"], "code": ["builtin:code"], "math": ["builtin:math"]},
        "warnings": [],
        "provenance": {"demix_version": "0"},
    }


def test_every_format_renders_the_ratios() -> None:
    doc = _doc()
    assert set(FORMATS) == {"json", "yaml", "csv", "megatron", "hf", "markdown"}
    assert json.loads(render(doc, "json")[1])["ratios"] == doc["ratios"]
    y = yaml.safe_load(render(doc, "yaml")[1])
    assert (
        y["schema"] == SCHEMA and y["ratios"] == doc["ratios"] and y["merge_weights"] == doc["merge_weights"]
    )
    rows = list(csv.DictReader(io.StringIO(render(doc, "csv")[1])))
    assert [r["domain"] for r in rows] == ["prose", "code", "math"]
    assert sum(float(r["ratio"]) for r in rows) == pytest.approx(1.0)
    assert rows[1]["tokens"] == "300" and float(rows[1]["epochs"]) == 3.0
    mega = render(doc, "megatron")[1].splitlines()[-1].split()
    assert mega[0] == "--data-path"
    assert mega[1:] == ["0.600000", "/data/prose_text_document", "0.300000", "/data/code_text_document",
                        "0.100000", "/data/math_text_document"]  # fmt: skip
    hf = render(doc, "hf")[1]
    compile(hf, "hf_interleave.py", "exec")  # valid Python
    assert '"code": 0.300000,' in hf and "interleave_datasets(" in hf
    md = render(doc, "markdown")[1]
    assert "| code | 0.3000 | 0.250–0.350 |" in md and "not the merge weights" in md


def _stream_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lengths: dict | None, words: int) -> dict:
    """Run the exported snippet on real jsonl copies (a: 10-word documents, b: 100-word ones) and
    count each source's words in the first ``words`` the stream gives."""
    for name, n in (("a", 10), ("b", 100)):
        (tmp_path / name).mkdir()
        docs = [json.dumps({"text": " ".join([name] * n)}) for _ in range(200)]
        (tmp_path / name / "part.jsonl").write_text("\n".join(docs) + "\n")
    doc = {**_doc(), "domains": ["a", "b"], "ratios": {"a": 0.5, "b": 0.5}, "tokens_per_document": lengths}
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(render(doc, "hf")[1], "hf_interleave.py", "exec"), scope)
    seen = {"a": 0, "b": 0}
    for row in scope["mixture"]:
        seen[row["text"][0]] += len(row["text"].split())
        if sum(seen.values()) >= words:
            return seen
    raise AssertionError("the stream ended early")


def test_the_hf_snippet_streams_the_ratios_as_token_shares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents 10x apart in length: drawn with the ratios as probabilities, a would get 9% of the
    words; the snippet's per-document probabilities give it its 50%."""
    seen = _stream_words(tmp_path, monkeypatch, {"a": 10.0, "b": 100.0}, 20_000)
    assert seen["a"] / sum(seen.values()) == pytest.approx(0.5, abs=0.06)


def test_the_hf_snippet_refuses_unknown_document_lengths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit, match="tokens_per_document"):
        _stream_words(tmp_path, monkeypatch, {"a": None, "b": 100.0}, 100)
