"""Each stage reads only the config keys it declares (``Stage.reads`` ∪ ``Stage.ignores``).

Every stage runs once on a fresh copy of the tiny config (small budgets so training is quick, every
stage doing its work rather than skipping) with a recording hook on the config objects
(:func:`demix.config.base.set_read_hook`); a key read that the stage did not declare fails.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from demix.config import ExperimentConfig, dump_config
from demix.config.base import StrictModel, set_read_hook
from demix.pipeline import STAGES
from demix.run import RunDir
from tests.conftest import tiny_config

DUMPS = ("model_dump", "model_dump_json")


def _alias(model: BaseModel, name: str) -> str:
    info = type(model).model_fields[name]
    return info.alias or name


class KeyRecorder:
    """Maps every config object of one ``ExperimentConfig`` to its dotted path and records reads.

    A read of a field that holds a section is navigation, not a read; a read of a list of models
    (``corpora.candidates``) or of any field of one of its items records the list's key; a
    ``model_dump`` records every leaf it dumps (``include``/``exclude`` honoured at the top level).
    """

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.paths: dict[int, tuple[str, bool]] = {}  # id -> (dotted path, is a list item)
        self.by_class: dict[type, tuple[str, bool]] = {}
        self.reads: set[str] = set()
        self._walk(cfg, "", False)

    def _walk(self, m: BaseModel, path: str, item: bool) -> None:
        self.paths[id(m)] = (path, item)
        self.by_class.setdefault(type(m), (path, item))
        for name in type(m).model_fields:
            v = m.__dict__[name]
            key = f"{path}.{_alias(m, name)}" if path else _alias(m, name)
            if isinstance(v, BaseModel):
                self._walk(v, path if item else key, item)
            elif isinstance(v, list | tuple):
                for x in v:
                    if isinstance(x, BaseModel):
                        self._walk(x, path if item else key, True)

    def key(self, model: BaseModel, name: str | None) -> str:
        path, item = self.paths.get(id(model)) or self.by_class.get(
            type(model), (f"?{type(model).__name__}", False)
        )
        if item or name is None:
            return path
        return f"{path}.{_alias(model, name)}" if path else _alias(model, name)

    def _leaves(self, model: BaseModel, include: Any = None, exclude: Any = None) -> None:
        path, item = self.paths.get(id(model)) or self.by_class.get(type(model), ("?", False))
        if item:
            self.reads.add(path)
            return
        for name in type(model).model_fields:
            if (include is not None and name not in include) or (exclude is not None and name in exclude):
                continue
            v = model.__dict__[name]
            if isinstance(v, BaseModel):
                self._leaves(v)
            else:
                self.reads.add(self.key(model, name))

    def hook(self, model: StrictModel, name: str, value: Any) -> Any:
        if name in type(model).model_fields:
            if not isinstance(value, BaseModel):
                self.reads.add(self.key(model, name))
        elif name in DUMPS:
            return self._dump_wrapper(model, value)
        return value

    def _dump_wrapper(self, model: BaseModel, fn: Callable[..., Any]) -> Callable[..., Any]:
        def dump(*args: Any, **kw: Any) -> Any:
            self._leaves(model, kw.get("include"), kw.get("exclude"))
            return fn(*args, **kw)

        return dump


@contextlib.contextmanager
def recording(cfg: ExperimentConfig) -> Iterator[KeyRecorder]:
    """Record the keys of ``cfg`` read inside the block."""
    rec = KeyRecorder(cfg)
    previous = set_read_hook(rec.hook)
    try:
        yield rec
    finally:
        set_read_hook(previous)


def covered(key: str, declared: tuple[str, ...] | set[str]) -> bool:
    """``key`` is one of ``declared`` or lies under one of them (a prefix)."""
    return any(key == d or key.startswith(d + ".") for d in declared)


def _schema_keys(cfg: ExperimentConfig) -> set[str]:
    out: set[str] = set()

    def walk(d: Any, path: str) -> None:
        out.add(path)
        if isinstance(d, dict):
            for k, v in d.items():
                walk(v, f"{path}.{k}" if path else k)

    walk(cfg.model_dump(mode="json", by_alias=True), "")
    return out


def test_declared_keys_exist_and_do_not_overlap(tmp_path: Path) -> None:
    keys = _schema_keys(tiny_config(tmp_path))
    for st in STAGES:
        for k in (*st.reads, *st.ignores):
            assert k in keys, f"{st.name}: {k!r} is not a config key"
        # An ignore may carve a cosmetic key out of a read section, never the reverse.
        both = [k for k in st.reads if covered(k, st.ignores)]
        assert not both, f"{st.name}: {both} both read and ignored"


STAGE = {st.name: st for st in STAGES}


def _ancestors(name: str) -> set[str]:
    out: set[str] = set()
    for n in STAGE[name].needs:
        out |= {n, *_ancestors(n)}
    return out


# Small budgets: every training stage still steps, evaluates and checkpoints, in a few seconds.
FAST = (
    "corpora.builtin_bytes=600K",
    "tokenizer.sample_bytes=100K",
    "train.base_tokens=8K",
    "train.component_tokens=8K",
    "train.eval_every=4",
    "train.checkpoint_every=4",
    "train.log_every=2",
    "search.n_trials=3",
    "validate.mixtures=3",
    # compare: the law's minimum swarm over 5 domains (K + 2), a few steps per model
    "compare.swarm.count=7",
    "compare.swarm.tokens=2K",
    "compare.check.tokens=2K",
    "compare.check.bootstrap=50",
    "compare.regmix.pool_size=2000",
    "compare.regmix.top_k=16",
)


@pytest.mark.slow
def test_every_stage_reads_only_declared_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    prep = importlib.import_module("demix.data.prepare")  # the module, not demix.data's prepare()

    def dump_unrecorded(cfg: ExperimentConfig) -> str:  # config.yaml is provenance, not an input
        previous = set_read_hook(None)
        try:
            return dump_config(cfg)
        finally:
            set_read_hook(previous)

    monkeypatch.setattr(prep, "dump_config", dump_unrecorded)
    cfg = tiny_config(tmp_path / "run", *FAST)
    run = RunDir.for_config(cfg)
    undeclared: dict[str, list[str]] = {}
    timings = {}
    for st in STAGES:
        t0 = time.perf_counter()
        with recording(cfg) as rec:
            st.fn(cfg, run)
        timings[st.name] = round(time.perf_counter() - t0, 1)
        # A key read by a stage this one builds on is in its hash already (the hashes chain).
        upstream = {k for n in _ancestors(st.name) for k in STAGE[n].reads}
        bad = sorted(k for k in rec.reads if not covered(k, (*st.reads, *st.ignores, *upstream)))
        if bad:
            undeclared[st.name] = bad
    print("stage seconds:", timings)
    assert not undeclared, f"stages read keys they do not declare: {undeclared}"
