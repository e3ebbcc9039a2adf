"""The ``components:`` section: what it stands for, and what it refuses (pure config, no models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from demix.config import config_from_dict, dump_config
from demix.errors import ConfigError


def _byo(**components: Any) -> dict[str, Any]:
    section = {
        "general": "web",
        "beta": 0.4,
        "base": "ckpt/base",
        "candidates": {
            "web": {"path": "ckpt/web", "tokens": "30B"},
            "math": {"path": "ckpt/math", "tokens": "4B", "group": "math"},
        },
    }
    return {"name": "byo", "components": {**section, **components}}


def test_the_section_sets_the_keys_every_stage_reads() -> None:
    cfg = config_from_dict(_byo())
    assert cfg.domains == ["web", "math"] and cfg.general == "web" and cfg.train.beta == 0.4
    assert cfg.merge.components == {"web": Path("ckpt/web"), "math": Path("ckpt/math")}
    assert cfg.merge.base == Path("ckpt/base")
    assert cfg.search.token_counts == {"web": 30_000_000_000, "math": 4_000_000_000}
    assert cfg.tokenizer.kind == "pretrained" and cfg.tokenizer.name_or_path == "ckpt/web"
    assert not cfg.evaluate.builtin.enabled  # no held-out text: the built-in tasks are made of it
    assert not cfg.corpora.candidates


def test_a_dumped_config_loads_back_the_same() -> None:
    for data in (_byo(), _byo(candidates={n: {"path": f"c/{n}", "tokens": 10, "heldout": {"path": f"h/{n}.jsonl"}}
                                           for n in ("web", "code")})):  # fmt: skip
        cfg = config_from_dict(data)
        assert config_from_dict(yaml.safe_load(dump_config(cfg))) == cfg


def test_held_out_text_becomes_the_candidates_prepare_reads() -> None:
    cands = {n: {"path": f"c/{n}", "tokens": 10, "heldout": {"path": f"h/{n}.jsonl", "max_docs": 300}}
             for n in ("web", "code")}  # fmt: skip
    cfg = config_from_dict(_byo(candidates=cands))
    assert [c.name for c in cfg.corpora.candidates] == ["web", "code"]
    assert cfg.corpora.candidates[1].sources[0].path == Path("h/code.jsonl")
    assert cfg.corpora.candidates[1].sources[0].max_docs == 300
    assert cfg.evaluate.builtin.enabled


def test_no_general_component_means_r_equals_w() -> None:
    cfg = config_from_dict(_byo(general=None, beta=0))
    assert cfg.train.beta == 0.0


@pytest.mark.parametrize(
    ("data", "culprit"),
    [
        ({**_byo(), "train": {"beta": 0.5}}, "train.beta: set by the components: section (0.4)"),
        ({**_byo(), "search": {"token_counts": {"web": 1, "math": 1}}}, "search.token_counts: set by the components"),
        (_byo(general="nope"), "'nope' is not a candidate"),
        (_byo(general=None), "with no general component (general: null)"),
        (_byo(candidates={"web": {"path": "a", "tokens": 1}}), "components.candidates"),
        (_byo(candidates={"web": {"path": "a", "tokens": 1, "heldout": {"path": "h"}}, "math": {"path": "b", "tokens": 1}}),
         "give held-out text for every candidate or for none (missing: math)"),
        (_byo(candidates={"web": {"path": "a"}, "math": {"path": "b", "tokens": 1}}), "components.candidates.web.tokens"),
    ],
    ids=["beta-twice", "counts-twice", "general-unknown", "beta-without-general", "one-candidate", "heldout-partial",
         "tokens-missing"],
)  # fmt: skip
def test_bad_sections_name_the_key(data: dict[str, Any], culprit: str) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        config_from_dict(data)
    assert culprit in str(e.value), str(e.value)
