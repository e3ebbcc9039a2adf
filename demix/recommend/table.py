"""``search/trials.csv`` read back as arrays: the one table recommend, export and report work from.

The search writes one row per finished trial (../DESIGN.md, "Trials table"); this module parses that
text into a :class:`TrialsTable` (pure) and loads it from a run with a clear error when the search
has not produced it yet.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from demix.errors import DataError, StageError


def _float(text: str | None) -> float:
    if text is None or text.strip() == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclass
class TrialsTable:
    """Finished trials in canonical domain order.

    Attributes:
        domains: domain names (the manifest's order, read from the ``w:`` columns).
        number: (n,) trial numbers.
        state: (n,) Optuna states (``COMPLETE``, ``FAIL``, ...).
        baseline: (n,) baseline name, ``""`` for search trials.
        W: (n, K) merge weights. R: (n, K) data ratios.
        loss: (n, K) held-out bits per byte per domain (NaN where not measured).
        metrics: task -> (n,) values.
        objective: (n,) the single objective (mean of group objectives).
        objectives: group -> (n,) per-group objectives.
        merge_s, eval_s: (n,) seconds per trial.
    """

    domains: list[str]
    number: np.ndarray
    state: np.ndarray
    baseline: np.ndarray
    W: np.ndarray
    R: np.ndarray
    loss: np.ndarray
    objective: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    objectives: dict[str, np.ndarray] = field(default_factory=dict)
    merge_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eval_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.number)

    @property
    def groups(self) -> list[str]:
        return sorted(self.objectives)

    def complete(self) -> TrialsTable:
        """Only the trials that finished with a finite objective and valid weights."""
        ok = (self.state == "COMPLETE") & np.isfinite(self.objective) & np.isfinite(self.W).all(axis=1)
        return self.subset(np.flatnonzero(ok))

    def subset(self, idx: np.ndarray) -> TrialsTable:
        """Rows ``idx`` (any integer index array, repeats allowed: bootstrap resamples use them)."""
        idx = np.asarray(idx, dtype=np.int64)
        return TrialsTable(
            domains=list(self.domains),
            number=self.number[idx],
            state=self.state[idx],
            baseline=self.baseline[idx],
            W=self.W[idx],
            R=self.R[idx],
            loss=self.loss[idx],
            objective=self.objective[idx],
            metrics={k: v[idx] for k, v in self.metrics.items()},
            objectives={k: v[idx] for k, v in self.objectives.items()},
            merge_s=self.merge_s[idx],
            eval_s=self.eval_s[idx],
        )

    def group_matrix(self) -> np.ndarray:
        """(n, G) per-group objectives in :attr:`groups` order; the objective alone when no groups."""
        if not self.objectives:
            return self.objective[:, None]
        return np.column_stack([self.objectives[g] for g in self.groups])


def parse_trials_csv(text: str, *, source: str = "trials.csv") -> TrialsTable:
    """Parse the text of ``search/trials.csv``.

    Raises:
        DataError: no ``w:`` columns, or a row without a trial number.
    """
    reader = csv.DictReader(io.StringIO(text))
    cols = list(reader.fieldnames or [])
    domains = [c[2:] for c in cols if c.startswith("w:")]
    if not domains:
        raise DataError("no w:<domain> columns; is this a demix trials table?", path=source)
    rows = list(reader)
    num_col = "trial" if "trial" in cols else "number"
    try:
        number = np.array([int(r[num_col]) for r in rows], dtype=np.int64)
    except (KeyError, ValueError, TypeError):
        raise DataError(f"every row needs an integer {num_col!r} column", path=source) from None

    def matrix(prefix: str) -> np.ndarray:
        return np.array(
            [[_float(r.get(f"{prefix}:{d}")) for d in domains] for r in rows], dtype=np.float64
        ).reshape(len(rows), len(domains))

    def column(name: str) -> np.ndarray:
        return np.array([_float(r.get(name)) for r in rows], dtype=np.float64)

    metric_cols = [c for c in cols if c.startswith("metric:")]
    group_cols = [c for c in cols if c.startswith("objective:")]
    return TrialsTable(
        domains=domains,
        number=number,
        state=np.array([(r.get("state") or "COMPLETE").strip() for r in rows], dtype=object),
        baseline=np.array([(r.get("baseline") or "").strip() for r in rows], dtype=object),
        W=matrix("w"),
        R=matrix("mix"),
        loss=matrix("loss"),
        objective=column("objective"),
        metrics={c.split(":", 1)[1]: column(c) for c in metric_cols},
        objectives={c.split(":", 1)[1]: column(c) for c in group_cols},
        merge_s=column("merge_s"),
        eval_s=column("eval_s"),
    )


def load_trials(path: Path) -> TrialsTable:
    """Read a run's trials table.

    Raises:
        StageError: the search has not written it yet.
        DataError: it is not a demix trials table.
    """
    path = Path(path)
    if not path.is_file():
        raise StageError(f"no search results at {path}; run `demix search` first")
    return parse_trials_csv(path.read_text(), source=str(path))
