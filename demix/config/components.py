"""Bring your own components: the ``components:`` section and the keys it stands for.

A team that trained its components elsewhere (Megatron-LM, OLMo-core, torchtitan, converted to
Hugging Face format; or DeMix's released Qwen3-1.7B ones) states once what they are: one checkpoint
per candidate, what each was trained on (its data's token count, the general-data share β, which
candidate is the general data or that none is), their base model and optionally a few hundred
held-out documents per candidate. Every stage then works from that declaration.

The section is expanded, before validation, into the keys the stages read (one home per idea:
the stages do not learn a second way to find components): ``merge.components``, ``merge.base``,
``search.token_counts``, ``train.beta``, ``corpora.general``, the tokenizer (the components' own)
and ``corpora.candidates`` (the held-out text, which is all ``demix prepare`` then reads; without
it there is nothing to prepare and the built-in tasks, made of it, are off). A key
the user also sets must agree with the section, so a dumped ``config.yaml`` loads back unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from demix.config.base import Count, StrictModel, holder
from demix.config.data import SourceConfig


class ComponentEntry(StrictModel):
    """One candidate's component: its checkpoint and the data it stands for."""

    path: Path  # a Hugging Face checkpoint directory (config.json + safetensors)
    tokens: Count = Field(gt=0)  # tokens of this candidate's data (the prior; epochs in the export)
    group: str | None = None  # capability group (general, code, math, ...): the built-in task kind
    # Held-out text of this candidate (a file, or a few hundred documents from its source, e.g.
    # {path: val/math.jsonl} or {hf: ..., max_docs: 300}): scored as bits per byte for the law.
    heldout: SourceConfig | None = None


class ComponentsConfig(StrictModel):
    """Components trained elsewhere, one per candidate, in the candidates' order."""

    candidates: dict[str, ComponentEntry] = Field(min_length=2)
    # The candidate that is the general data each component was mixed with (β of its training
    # tokens), or null: no general component, the components saw only their own candidate's data,
    # and a proxy merged with w stands for the mixture r = w.
    general: str | None
    beta: float = Field(default=0.5, ge=0, lt=1)
    base: Path | None = None  # the model the components continued from (a report row; task arithmetic)
    tokenizer: Path | None = None  # default: the first component's directory

    @model_validator(mode="after")
    def _consistent(self) -> ComponentsConfig:
        names = list(self.candidates)
        if self.general is not None and self.general not in names:
            raise ValueError(f"general: {self.general!r} is not a candidate ({', '.join(names)})")
        if self.general is None and self.beta > 0:
            raise ValueError(
                "beta: with no general component (general: null) the components saw only their own "
                "data; set beta: 0, or name the general candidate the components were mixed with"
            )
        given = [n for n, e in self.candidates.items() if e.heldout is not None]
        if given and len(given) != len(names):
            missing = ", ".join(n for n in names if n not in given)
            raise ValueError(
                f"heldout: give held-out text for every candidate or for none (missing: {missing})"
            )
        return self

    @property
    def has_heldout(self) -> bool:
        return all(e.heldout is not None for e in self.candidates.values())


class ComponentsError(ValueError):
    """The section, or a key that disagrees with it; ``key`` names the culprit."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def expand_components(data: dict[str, Any]) -> dict[str, Any]:
    """The raw config mapping with the keys ``components:`` stands for filled in (see module doc).

    Raises:
        ValidationError: the section itself is invalid (locations relative to it).
        ComponentsError: a key the user set disagrees with the section.
    """
    raw = data.get("components")
    if raw is None:
        return data
    comps = ComponentsConfig.model_validate(raw)
    names = list(comps.candidates)
    first = comps.candidates[names[0]].path
    derived: dict[str, Any] = {
        "merge.components": {n: str(e.path) for n, e in comps.candidates.items()},
        "search.token_counts": {n: int(e.tokens) for n, e in comps.candidates.items()},
        "corpora.general": comps.general or names[0],  # with beta 0 the choice changes no ratio
        "train.beta": comps.beta if comps.general is not None else 0.0,
        "tokenizer.kind": "pretrained",
        "tokenizer.name_or_path": str(comps.tokenizer or first),
    }
    if comps.base is not None:
        derived["merge.base"] = str(comps.base)
    if comps.has_heldout:
        derived["corpora.candidates"] = [
            {"name": n, "group": e.group, "sources": [_source_dict(e.heldout)]}
            for n, e in comps.candidates.items()
        ]
    else:  # no held-out text: nothing to prepare, no built-in tasks (made of it); the user's tasks score
        derived["evaluate.builtin.enabled"] = False
    out = _copy_sections(data, derived)
    for key, value in derived.items():
        _put(out, key, value)
    return out


def _source_dict(src: SourceConfig | None) -> dict[str, Any]:
    assert src is not None
    return src.model_dump(mode="json", exclude_defaults=True)


def _copy_sections(data: dict[str, Any], derived: dict[str, Any]) -> dict[str, Any]:
    """A copy deep enough that filling ``derived`` leaves the caller's mapping as it was."""
    out = dict(data)
    for key in derived:
        node = out
        for part in key.split(".")[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else child
            node = node[part] if isinstance(node[part], dict) else {}
    return out


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless the user set it; a value the user set must equal the derived one."""
    parts = key.split(".")
    node = holder(data, parts)
    if isinstance(node, str):
        return  # not a section: validation names it
    have = node.get(parts[-1])
    if have is None or _same(have, value):
        node[parts[-1]] = value
        return
    raise ComponentsError(
        key,
        f"{key}: set by the components: section ({_show(value)}), but the config also gives "
        f"{_show(have)}; remove {key} (components: says what the components are)",
    )


def _same(have: Any, want: Any) -> bool:
    """Equal as a dumped config writes them (paths as strings, counts as numbers, no defaults)."""
    if isinstance(want, list) and isinstance(have, list):
        return len(have) == len(want) and all(_same(h, w) for h, w in zip(have, want, strict=True))
    if isinstance(want, dict) and isinstance(have, dict):
        return all(_same(have.get(k), v) for k, v in want.items() if v is not None)
    if isinstance(want, int | float) and not isinstance(want, bool):
        try:
            return float(have) == float(want)
        except (TypeError, ValueError):
            return False
    return str(have) == str(want)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["ComponentEntry", "ComponentsConfig", "ComponentsError", "expand_components"]
