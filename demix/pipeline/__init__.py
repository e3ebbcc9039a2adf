"""``demix run``: every stage in order, each skipped when its inputs have not changed.

Each stage declares the config keys that can change its result (``reads``, in
:mod:`demix.pipeline.stages`), and its inputs hash covers exactly those plus the hashes of the stages
it builds on, so changing ``train.lr`` redoes training and everything after it, changing
``export.formats`` redoes only export and report, and changing ``train.threads`` redoes nothing. A
stage's record keeps the values it hashed, so ``demix run`` and ``demix status`` name the keys that
changed. Redoing a stage moves its trained models and search study to ``superseded/``, never deletes
them. Each stage function also guards its own outputs (prepare hashes the source text, training
resumes from checkpoints, the search resumes its study), so a run that was stopped continues where
it stopped.
"""

from __future__ import annotations

from demix.pipeline.keys import StageInputs, changed_keys, key_values, stage_inputs
from demix.pipeline.run import (
    KEPT,
    OnStage,
    StageStatus,
    downstream,
    run_all,
    set_aside,
    skipped_optional,
    stage_hashes,
    status,
)
from demix.pipeline.stages import STAGE_NAMES, STAGES, Stage

__all__ = [
    "KEPT",
    "STAGES",
    "STAGE_NAMES",
    "OnStage",
    "Stage",
    "StageInputs",
    "StageStatus",
    "changed_keys",
    "downstream",
    "key_values",
    "run_all",
    "set_aside",
    "skipped_optional",
    "stage_hashes",
    "stage_inputs",
    "status",
]
