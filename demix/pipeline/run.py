"""Deciding which stages to redo, setting their old outputs aside, and running the rest."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demix.config import ExperimentConfig
from demix.errors import DemixError
from demix.pipeline.keys import StageInputs, changed_keys, grown_only, legacy_hashes, stage_inputs
from demix.pipeline.stages import STAGE_NAMES, STAGES, Stage
from demix.run import RunDir
from demix.run.records import clear_stage, mark_stage_done, read_stage_record
from demix.util.io import remove_orphaned_temps

# Outputs under these are moved to superseded/ when their stage is redone, never deleted.
KEPT = ("models", "search")

OnStage = Callable[[str, str, str], Any]
"""``on_stage(stage, event, detail)``: events ``start``, ``skip``, ``done``, ``unneeded`` (detail:
why), ``redo`` (detail: why), ``continue`` (detail: the keys that grew; the work so far is kept),
``moved`` (detail: where the old outputs went)."""

CONTINUES = "continued, not redone: the work so far is kept"


def stage_hashes(cfg: ExperimentConfig) -> dict[str, str]:
    """The inputs hash of every stage, chained through the stages it builds on."""
    return {name: inp.hash for name, inp in stage_inputs(cfg).items()}


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
    state: str  # done | stale | pending | not needed
    optional: bool
    changed: list[str] = field(default_factory=list)  # for a stale stage: ``key: old -> new``, ``after X``


def _state(run: RunDir, st: Stage, now: StageInputs, legacy: str) -> tuple[str, list[str]]:
    """``done``, ``pending``, ``stale`` (redone from scratch) or ``grown`` (continued: only keys in
    ``st.grows`` increased), with the changed keys."""
    record = read_stage_record(run.root, st.name)
    if record is None:
        return "pending", []
    h = record.get("inputs_hash")
    if h == now.hash or ("keys" not in record and h == legacy):
        return "done", []
    return ("grown" if grown_only(st.grows, record, now) else "stale"), changed_keys(record, now)


def status(cfg: ExperimentConfig, run: RunDir) -> list[StageStatus]:
    """Which stages are done with the current config, done with another (stale: and which keys
    changed), or not run. A record from before stages declared their keys counts as done when it
    matches the current config under the old section-hash scheme."""
    inputs, legacy = stage_inputs(cfg), legacy_hashes(cfg)
    out = []
    for st in STAGES:
        reason = st.unneeded(cfg)
        if reason is not None:
            out.append(StageStatus(st.name, "not needed", st.optional, [reason]))
            continue
        state, changed = _state(run, st, inputs[st.name], legacy[st.name])
        if state == "grown":
            state, changed = "stale", [*changed, CONTINUES]
        out.append(StageStatus(st.name, state, st.optional, changed))
    return out


def _utc_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def set_aside(run: RunDir, st: Stage) -> Path | None:
    """Move ``st``'s outputs under models/ and search/ to ``superseded/<stage>-<UTC time>/`` (same
    relative layout) and remove its other outputs; returns where they went (``None``: nothing kept)."""
    dest = run.root / "superseded" / f"{st.name}-{_utc_stamp()}"
    n = 1
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{st.name}-{_utc_stamp()}-{n}")
    moved = False
    for rel in st.outputs:
        src = run.root / rel
        if not (src.exists() or src.is_symlink()):
            continue
        if rel.split("/", 1)[0] in KEPT:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            src.rename(dest / rel)
            moved = True
        elif src.is_dir():
            shutil.rmtree(src)
        else:
            src.unlink()
    return dest if moved else None


def _check_names(force: Sequence[str], until: str | None) -> None:
    for name in [*force, *([until] if until else [])]:
        if name not in STAGE_NAMES:
            raise DemixError(f"unknown stage {name!r} (stages: {', '.join(STAGE_NAMES)})")


def _asked(st: Stage, force: Sequence[str], with_validate: bool, with_compare: bool) -> bool:
    """Whether :func:`run_all` takes the stage up: always, unless it is optional and neither its
    flag nor ``force`` asks for it."""
    wanted = {"validate": with_validate, "compare": with_compare}.get(st.name, with_validate)
    return not st.optional or wanted or st.name in force


def skipped_optional(
    *,
    force: Sequence[str] = (),
    with_validate: bool = False,
    with_compare: bool = False,
    until: str | None = None,
) -> tuple[str, ...]:
    """The optional stages :func:`run_all` will not run with these arguments: not asked for, or
    after ``until``. ``demix run`` leaves their preflight rules unchecked, so a run without
    ``--with-compare`` is not refused for the comparison's settings."""
    out, stopped = [], False
    for st in STAGES:
        asked = _asked(st, force, with_validate, with_compare)
        if st.optional and (stopped or not asked):
            out.append(st.name)
        stopped = stopped or (asked and st.name == until)
    return tuple(out)


def run_all(
    cfg: ExperimentConfig,
    run: RunDir,
    *,
    force: Sequence[str] = (),
    with_validate: bool = False,
    with_compare: bool = False,
    until: str | None = None,
    on_stage: OnStage | None = None,
) -> dict[str, str]:
    """Run the pipeline; returns each stage's outcome (``ran``, ``skipped`` or ``not needed``).

    A stage is redone when forced, downstream of a forced stage, or stale (the keys it reads or a
    stage it builds on changed); its trained models and search study are moved to ``superseded/``
    first, never deleted. The caller holds the run's lock (:func:`demix.run.lock.run_lock`).

    Args:
        force: stages to redo even when done (their downstream stages are redone too).
        with_validate: also train reference models and measure proxy fidelity.
        with_compare: also compare every mixing method, each answer checked by training.
        until: stop after this stage.
        on_stage: progress callback (:data:`OnStage`).

    Raises:
        DemixError: an unknown stage name, or any stage's own user-facing error.
    """
    _check_names(force, until)
    redo = {n for name in force for n in downstream(name)}
    note: OnStage = on_stage or (lambda *_: None)
    inputs, legacy = stage_inputs(cfg), legacy_hashes(cfg)
    outcome: dict[str, str] = {}
    run.root.mkdir(parents=True, exist_ok=True)
    remove_orphaned_temps(run.root)  # a run killed mid-write (the lock is ours: no writer is live)
    for st in STAGES:
        if not _asked(st, force, with_validate, with_compare):
            continue
        reason = st.unneeded(cfg)
        if reason is not None:
            outcome[st.name] = "not needed"
            note(st.name, "unneeded", reason)
            if until == st.name:
                break
            continue
        now = inputs[st.name]
        state, changed = _state(run, st, now, legacy[st.name])
        if state == "grown" and st.name not in redo:  # more of the same: resume over its outputs
            note(st.name, "continue", ", ".join(changed))
            clear_stage(run.root, st.name)
            state = "pending"
        elif st.name in redo or state == "stale":
            why = "forced" if st.name in force else ", ".join(changed) or f"after {', '.join(st.needs)}"
            note(st.name, "redo", why)
            clear_stage(run.root, st.name)
            where = set_aside(run, st)
            if where is not None:
                note(st.name, "moved", str(where))
            state = "pending"
        if state == "done":
            outcome[st.name] = "skipped"
            note(st.name, "skip", "")
            if "keys" not in (read_stage_record(run.root, st.name) or {}):  # adopt an old record
                mark_stage_done(run.root, st.name, now.hash, keys=now.keys, needs=now.needs)
        else:
            note(st.name, "start", "")
            st.fn(cfg, run)
            outcome[st.name] = "ran"
            note(st.name, "done", "")
            mark_stage_done(run.root, st.name, now.hash, keys=now.keys, needs=now.needs)
        if until == st.name:
            break
    return outcome
