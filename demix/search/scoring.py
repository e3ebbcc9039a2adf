"""What scoring a trial returns: the :class:`Score` of one proxy, and the :class:`Scorer` protocol.

The search drives any :class:`Scorer`: w -> per-task metrics, per-domain bits-per-byte, timings.
The real one (:class:`demix.search.proxy.ProxyScorer`) merges components into a live model and runs
lm-eval; unit tests drive the same search logic with a synthetic scorer.

A score's metrics are :class:`demix.evaluate.result.Metric` objects, and the objective is
:mod:`demix.evaluate.scores`' (../DESIGN.md): normalised against the baselines, which are frozen
before the first trial, so a recorded objective never changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from demix.evaluate.result import Metric
from demix.evaluate.spec import EvalRole

# The part of each metric a trial's score records (search/baselines.json, the study's baselines).
SCORE_FIELDS = ("value", "direction", "group", "stderr", "weight")


@dataclass
class Score:
    """Everything scoring one mixture measured."""

    metrics: dict[str, Metric]  # task -> metric
    bpb: dict[str, float] = field(default_factory=dict)  # domain -> bits per byte on held-out text
    merge_s: float = 0.0
    eval_s: float = 0.0

    def values(self) -> dict[str, float]:
        """Task -> value (what the objective normalises against, for a baseline)."""
        return {k: m.value for k, m in self.metrics.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": {k: m.to_json(SCORE_FIELDS) for k, m in self.metrics.items()},
            "bpb": dict(self.bpb),
            "merge_s": self.merge_s,
            "eval_s": self.eval_s,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Score:
        return cls(
            {k: Metric.from_json(v) for k, v in d["metrics"].items()},
            {k: float(v) for k, v in d.get("bpb", {}).items()},
            float(d.get("merge_s", 0.0)),
            float(d.get("eval_s", 0.0)),
        )


class Scorer(Protocol):
    """Scores a merge-weight vector. Implementations hold the live model between calls."""

    def groups(self, role: EvalRole = "search") -> list[str]:
        """Capability groups of the tasks of this role, sorted (one objective each in groups mode)."""
        ...

    def score(self, w: np.ndarray, role: EvalRole = "search") -> Score: ...
