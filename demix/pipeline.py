"""``demix run``: every stage in order, each skipped when its inputs have not changed.

A stage's inputs hash covers the config sections it reads and the hashes of the stages it builds on,
so changing ``train.lr`` redoes training and everything after it, while changing ``export.target_tokens``
redoes only export and report. Each stage function also guards its own outputs (prepare hashes the
source text, training resumes from checkpoints, the search resumes its study), so a run that was
stopped continues where it stopped.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demix.config import ExperimentConfig
from demix.data import prepare
from demix.errors import DemixError
from demix.export import export
from demix.law import check
from demix.recommend import recommend
from demix.report import report
from demix.run import RunDir
from demix.run.records import clear_stage, mark_stage_done, stage_done, stage_record_path
from demix.search import run_search
from demix.train import train_base, train_components
from demix.util.hashing import hash_json
from demix.validate import validate


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: the config sections it reads and the stages it builds on."""

    name: str
    sections: tuple[str, ...]
    needs: tuple[str, ...]
    fn: Callable[[ExperimentConfig, RunDir], object]
    optional: bool = False
    # Outputs (relative to the run) removed before the stage is redone because it was forced or its
    # inputs changed; prepare redoes only what changed by itself, so it has none.
    outputs: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage("prepare", ("corpora", "tokenizer"), (), prepare),
    Stage(
        "train-base",
        ("model", "train"),
        ("prepare",),
        train_base,
        outputs=("models/base",),
    ),
    Stage(
        "train-components",
        ("model", "train"),
        ("train-base",),
        train_components,
        outputs=("models/components",),
    ),
    Stage(
        "search",
        ("merge", "evaluate", "search", "export"),
        ("train-components",),
        run_search,
        outputs=("search", "tasks"),
    ),
    Stage("law", ("law", "search"), ("search",), check, outputs=("law",)),
    Stage("recommend", ("export", "search", "law"), ("law",), recommend),
    Stage("export", ("export",), ("recommend",), export, outputs=("export",)),
    Stage("report", ("export",), ("export",), report, outputs=("report",)),
    Stage(
        "validate",
        ("validate", "evaluate", "train", "merge"),
        ("train-components",),
        validate,
        optional=True,
        outputs=("validation", "models/references"),
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def stage_hashes(cfg: ExperimentConfig) -> dict[str, str]:
    """The inputs hash of every stage, chained through the stages it builds on."""
    dumped = cfg.model_dump(mode="json", by_alias=True)
    hashes: dict[str, str] = {}
    for st in STAGES:
        sections = {s: dumped[s] for s in st.sections}
        hashes[st.name] = hash_json({"sections": sections, "needs": [hashes[n] for n in st.needs]})
    return hashes


def downstream(name: str) -> list[str]:
    """``name`` and every stage that builds on it, in pipeline order."""
    out = [name]
    for st in STAGES:
        if any(n in out for n in st.needs) and st.name not in out:
            out.append(st.name)
    return out


@dataclass
class StageStatus:
    name: str
    state: str  # done | stale | pending
    optional: bool


def status(cfg: ExperimentConfig, run: RunDir) -> list[StageStatus]:
    """Which stages are done with the current config, done with another (stale), or not run."""
    hashes = stage_hashes(cfg)
    out = []
    for st in STAGES:
        if stage_done(run.root, st.name, hashes[st.name]):
            state = "done"
        elif stage_record_path(run.root, st.name).is_file():
            state = "stale"
        else:
            state = "pending"
        out.append(StageStatus(st.name, state, st.optional))
    return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def run_all(
    cfg: ExperimentConfig,
    run: RunDir,
    *,
    force: Sequence[str] = (),
    with_validate: bool = False,
    until: str | None = None,
    on_stage: Callable[[str, str], Any] | None = None,
) -> dict[str, str]:
    """Run the pipeline; returns each stage's outcome (``ran`` or ``skipped``).

    Args:
        force: stages to redo even when done (their downstream stages are redone too).
        with_validate: also train reference models and measure proxy fidelity.
        until: stop after this stage.
        on_stage: called as ``on_stage(name, "start"|"skip"|"done")`` for progress output.

    Raises:
        DemixError: an unknown stage name, or any stage's own user-facing error.
    """
    for name in [*force, *([until] if until else [])]:
        if name not in STAGE_NAMES:
            raise DemixError(f"unknown stage {name!r} (stages: {', '.join(STAGE_NAMES)})")
    redo: set[str] = set()
    for name in force:
        redo.update(downstream(name))
    hashes = stage_hashes(cfg)
    outcome: dict[str, str] = {}
    run.root.mkdir(parents=True, exist_ok=True)
    for st in STAGES:
        if st.optional and not (with_validate or st.name in force):
            continue
        stale = stage_record_path(run.root, st.name).is_file() and not stage_done(
            run.root, st.name, hashes[st.name]
        )
        if st.name in redo or stale:
            clear_stage(run.root, st.name)
            for rel in st.outputs:
                _remove(run.root / rel)
        if stage_done(run.root, st.name, hashes[st.name]):
            outcome[st.name] = "skipped"
            if on_stage:
                on_stage(st.name, "skip")
        else:
            if on_stage:
                on_stage(st.name, "start")
            st.fn(cfg, run)
            mark_stage_done(run.root, st.name, hashes[st.name])
            outcome[st.name] = "ran"
            if on_stage:
                on_stage(st.name, "done")
        if until == st.name:
            break
    return outcome
