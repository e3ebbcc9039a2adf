"""Everything the report shows about a run, read from the run directory once.

:func:`summarize` reads each product a single time (the trials, the recommendation, the exported
document, the manifest's token counts, the law's check and fit, the validation) into a
:class:`RunSummary`; the sections of :mod:`demix.report.build` and :mod:`demix.report.law` only
read that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.export.stage import available_tokens
from demix.recommend.build import Recommendation, finished_trials, recommend
from demix.recommend.table import TrialsTable
from demix.run import RunDir
from demix.util.io import read_json


@dataclass(frozen=True)
class RunSummary:
    """The products of one run that the report reads.

    Attributes:
        name: the experiment's name. root: the run directory. export_dir: where export writes.
        recommendation: the cached recommendation (``export/recommendation.json``).
        trials: the completed trials (``search/trials.csv``), baselines included.
        token_counts: (K,) training tokens per domain (manifest, else ``search.token_counts``), or
            ``None`` when unknown.
        exported: ``export/recommended_mixture.json`` when export ran, else ``None``.
        law_check, law_fit: ``law/check.json`` and ``law/fit.json`` when the law stage wrote them.
        validation: ``validation/validation.json`` when validation ran.
    """

    name: str
    root: Path
    export_dir: Path
    recommendation: Recommendation
    trials: TrialsTable
    token_counts: np.ndarray | None
    exported: dict[str, Any] | None
    law_check: dict[str, Any] | None
    law_fit: dict[str, Any] | None
    validation: dict[str, Any] | None


def _optional_json(path: Path) -> dict[str, Any] | None:
    return read_json(path) if path.is_file() else None


def summarize(cfg: ExperimentConfig, run: RunDir) -> RunSummary:
    """Read the run's products once (recomputing the recommendation if its cache is stale).

    Raises:
        StageError: the search has not run or is unfinished.
    """
    trials = finished_trials(cfg, run)
    rec = recommend(cfg, run, trials=trials)
    counts, _ = available_tokens(cfg, run, rec.domains)
    return RunSummary(
        name=cfg.name,
        root=run.root,
        export_dir=run.export,
        recommendation=rec,
        trials=trials,
        token_counts=counts,
        exported=_optional_json(run.export / "recommended_mixture.json"),
        law_check=_optional_json(run.law / "check.json"),
        law_fit=_optional_json(run.law / "fit.json"),
        validation=_optional_json(run.validation / "validation.json"),
    )
