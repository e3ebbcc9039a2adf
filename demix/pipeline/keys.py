"""Each stage's inputs: the values of the keys it reads, their hash chained through its needs, and
what changed since a stage record was written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from demix.config import ExperimentConfig
from demix.pipeline.stages import STAGES
from demix.util.hashing import hash_json


@dataclass(frozen=True)
class StageInputs:
    """What a stage's inputs hash covers: leaf key -> value, and each needed stage's hash."""

    hash: str
    keys: dict[str, Any]
    needs: dict[str, str]


def _lookup(dumped: dict[str, Any], key: str) -> Any:
    node: Any = dumped
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"stage key {key!r} is not a config key")
        node = node[part]
    return node


def _flatten(key: str, value: Any, out: dict[str, Any]) -> None:
    """``model`` -> ``model.hidden_size``, ... (an empty or non-dict value is a leaf)."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{key}.{k}", v, out)
    else:
        out[key] = value


def covers(prefixes: tuple[str, ...], key: str) -> bool:
    """``key`` is one of ``prefixes`` or lies under one of them."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def key_values(cfg: ExperimentConfig, keys: tuple[str, ...], ignores: tuple[str, ...] = ()) -> dict[str, Any]:
    """The leaf values under ``keys`` (dotted, prefixes allowed) in ``cfg``'s JSON dump, sorted,
    less those under ``ignores`` (a read section with its cosmetic keys carved out)."""
    dumped = cfg.model_dump(mode="json", by_alias=True)
    out: dict[str, Any] = {}
    for key in keys:
        _flatten(key, _lookup(dumped, key), out)
    return {k: v for k, v in sorted(out.items()) if not covers(ignores, k)}


def stage_inputs(cfg: ExperimentConfig) -> dict[str, StageInputs]:
    """Every stage's inputs, chained through the stages it builds on."""
    out: dict[str, StageInputs] = {}
    for st in STAGES:
        keys = key_values(cfg, st.reads, st.ignores)
        needs = {n: out[n].hash for n in st.needs}
        out[st.name] = StageInputs(hash_json({"keys": keys, "needs": needs}), keys, needs)
    return out


# The section-hash scheme before stages declared keys (demix <= 0.x): a record written by it that
# matches the current config is adopted rather than redone, so upgrading demix retrains nothing.
_LEGACY_SECTIONS = {
    "prepare": ("corpora", "tokenizer"),
    "train-base": ("model", "train"),
    "train-components": ("model", "train"),
    "search": ("merge", "evaluate", "search", "export"),
    "law": ("law", "search"),
    "recommend": ("export", "search", "law"),
    "export": ("export",),
    "report": ("export",),
    "validate": ("validate", "evaluate", "train", "merge"),
    "compare": ("compare",),  # newer than the scheme: no record of it has a legacy hash
}


def legacy_hashes(cfg: ExperimentConfig) -> dict[str, str]:
    """The inputs hash each stage had under the section-hash scheme."""
    dumped = cfg.model_dump(mode="json", by_alias=True)
    hashes: dict[str, str] = {}
    for st in STAGES:
        sections = {s: dumped[s] for s in _LEGACY_SECTIONS[st.name]}
        hashes[st.name] = hash_json({"sections": sections, "needs": [hashes[n] for n in st.needs]})
    return hashes


_MISSING: Any = object()


def _show(v: Any) -> str:
    return "(unset)" if v is _MISSING else repr(v) if isinstance(v, str) else str(v)


def changed_keys(record: dict[str, Any], now: StageInputs) -> list[str]:
    """Why a stage record no longer matches: ``key: old -> new`` per changed key, then
    ``after <stage>`` per needed stage whose inputs changed; ``keys unknown`` for an old record."""
    old = record.get("keys")
    if not isinstance(old, dict):
        return ["keys unknown (record written by an older demix)"]
    out = [
        f"{k}: {_show(old.get(k, _MISSING))} -> {_show(now.keys.get(k, _MISSING))}"
        for k in sorted(set(old) | set(now.keys))
        if old.get(k, _MISSING) != now.keys.get(k, _MISSING)
    ]
    old_needs = record.get("needs") or {}
    out += [f"after {n}" for n, h in now.needs.items() if old_needs.get(n) != h]
    return out


def grown_only(grows: tuple[str, ...], record: dict[str, Any] | None, now: StageInputs) -> list[str] | None:
    """The ``grows`` keys that increased, when nothing else the stage reads or builds on changed
    (the stage can continue over its work); ``None`` otherwise."""
    old = (record or {}).get("keys")
    if not grows or not isinstance(old, dict) or (record or {}).get("needs") != now.needs:
        return None
    changed = [
        k for k in sorted(set(old) | set(now.keys)) if old.get(k, _MISSING) != now.keys.get(k, _MISSING)
    ]
    grew = [
        k
        for k in changed
        if k in grows
        and isinstance(old.get(k), int)
        and isinstance(now.keys.get(k), int)
        and now.keys[k] > old[k]
    ]
    return grew if grew and grew == changed else None
