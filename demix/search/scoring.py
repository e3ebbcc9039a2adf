"""What scoring a trial returns, and the objective normalised against frozen baselines.

The search drives any :class:`Scorer`: w -> per-task metrics, per-domain bits-per-byte, timings.
The real one (:class:`demix.search.proxy.ProxyScorer`) merges components into a live model and runs
lm-eval; unit tests drive the same search logic with a synthetic scorer.

The objective is :mod:`demix.evaluate.scores`' (../DESIGN.md): every metric carries its direction; a
task score is normalised to [0, 1], higher better, 0 at the worst baseline and 1 at the best (values
beyond are kept); a group score is the weighted mean of its tasks; the objective is the mean of the
groups. The baselines are frozen before the first trial, so a recorded objective never changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

Direction = Literal["higher", "lower"]
Role = Literal["search", "report", "all"]


@dataclass(frozen=True)
class TaskMetric:
    """One task's score on one proxy."""

    value: float
    direction: Direction = "higher"
    group: str = "general"
    stderr: float | None = None
    weight: float = 1.0  # weight inside its group's mean


@dataclass
class Score:
    """Everything scoring one mixture measured."""

    metrics: dict[str, TaskMetric]  # task -> metric
    bpb: dict[str, float] = field(default_factory=dict)  # domain -> bits per byte on held-out text
    merge_s: float = 0.0
    eval_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": {k: asdict(v) for k, v in self.metrics.items()},
            "bpb": dict(self.bpb),
            "merge_s": self.merge_s,
            "eval_s": self.eval_s,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Score:
        return cls(
            {k: TaskMetric(**v) for k, v in d["metrics"].items()},
            {k: float(v) for k, v in d.get("bpb", {}).items()},
            float(d.get("merge_s", 0.0)),
            float(d.get("eval_s", 0.0)),
        )


class Scorer(Protocol):
    """Scores a merge-weight vector. Implementations hold the live model between calls."""

    def groups(self, role: Role = "search") -> list[str]:
        """Capability groups of the tasks of this role, sorted (one objective each in groups mode)."""
        ...

    def score(self, w: np.ndarray, role: Role = "search") -> Score: ...


def _result(score: Score) -> Any:
    from demix.evaluate.result import EvalResult, Metric

    return EvalResult(
        {
            k: Metric(m.value, m.stderr, m.direction, m.group, weight=m.weight)
            for k, m in score.metrics.items()
        }
    )


def _values(baselines: Mapping[str, Score]) -> dict[str, dict[str, float]]:
    return {n: {k: m.value for k, m in b.metrics.items()} for n, b in baselines.items()}


def normalized_tasks(score: Score, baselines: Mapping[str, Score]) -> dict[str, float]:
    """Task -> score in baseline units: 0 at the worst baseline, 1 at the best, higher better."""
    from demix.evaluate import scores

    return scores.normalized_tasks(_result(score), _values(baselines))


def group_objectives(score: Score, baselines: Mapping[str, Score]) -> dict[str, float]:
    """Group -> weighted mean normalised score of its tasks, groups sorted by name."""
    from demix.evaluate import scores

    return scores.group_objectives(_result(score), _values(baselines))


def objective(score: Score, baselines: Mapping[str, Score]) -> float:
    """Mean over groups of the group objectives (the single-objective value)."""
    from demix.evaluate import scores

    return scores.objective(_result(score), _values(baselines))
