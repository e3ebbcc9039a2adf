"""Task specs and the task suite: which lm-eval tasks score a proxy, in which role and group.

A :class:`TaskSuite` is what :func:`demix.evaluate.build_tasks` returns and what the
:class:`~demix.evaluate.Evaluator` runs. It keeps three kinds of task apart:

* ``search`` tasks: what a search optimises (the objective is computed from them);
* ``report`` tasks: what a report judges the chosen mixture by (never optimised, so not leaked);
* ``losses``: per-domain bits-per-byte on held-out text, run with every role; they become the trials
  table's ``loss:<domain>`` columns that the mixing law fits, and count in no objective unless
  ``evaluate.builtin.bpb_objective`` says so. Then they count in the search objective only, and
  report tasks ``demix_bpb_<domain>_report`` on other held-out documents judge the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from demix.config.evaluate import TaskRole

PREFIX = "demix_"  # every generated task and file starts with this


def bpb_task_name(domain: str) -> str:
    """The name of ``domain``'s bits-per-byte loss task (also its key in ``search/baselines.json``)."""
    return f"{PREFIX}bpb_{domain}"


Direction = Literal["higher", "lower"]  # which way a metric is better (what every JSON file writes)
SpecRole = Literal[TaskRole, "loss"]  # a task's role: the configured ones, or a per-domain loss
EvalRole = Literal["search", "report", "all"]  # which tasks one evaluation runs


def direction_of(text: object) -> Direction:
    """``lower`` for "lower"/"min"/"minimize"-like text (or an enum holding it), else ``higher``."""
    t = str(getattr(text, "value", text)).lower()
    return "lower" if t.startswith(("min", "lower", "low")) else "higher"


@dataclass(frozen=True)
class TaskSpec:
    """One lm-eval task as demix scores it.

    Attributes:
        name: the lm-eval task (or group) name.
        group: capability group (general, code, math, or the user's own).
        metric: the lm-eval metric the score is read from (``acc``, ``bits_per_byte``,
            ``exact_match,strict-match``); ``None`` means the task's first metric.
        direction: ``higher`` or ``lower`` is better (filled in from lm-eval when not known yet).
        role: ``search``, ``report``, ``both`` (needs ``evaluate.allow_overlap``) or ``loss``.
        kind: ``bpb``, ``math``, ``code``, ``cloze`` (built-in) or ``external``.
        domain: the candidate a built-in task was generated from.
        limit: documents evaluated per call (``None``: all).
        num_fewshot: few-shot examples (``None``: the task's default).
        weight: weight of the task inside its group's mean; 0: scored and shown, not counted
            (report-only accuracy tasks, ``evaluate.builtin.accuracy_objective: false``).
        objective: whether the task counts in the objective (bits-per-byte tasks do not, by default).
    """

    name: str
    group: str = "general"
    metric: str | None = None
    direction: Direction | None = None
    role: SpecRole = "search"
    kind: str = "external"
    domain: str | None = None
    limit: int | None = None
    num_fewshot: int | None = None
    weight: float = 1.0
    objective: bool = True

    def in_role(self, role: EvalRole) -> bool:
        """Whether an evaluation in ``role`` runs this task."""
        if role == "all" or self.role in ("both", "loss"):
            return True
        return self.role == role

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TaskSpec:
        return cls(**d)


@dataclass(frozen=True)
class TaskSuite:
    """The tasks of one run, and where lm-eval finds their YAML.

    Example::

        suite = build_tasks(cfg, run)
        [t.name for t in suite.search]   # ['demix_math_math_search', ...]
        suite.losses                     # one bits-per-byte task per domain
    """

    specs: tuple[TaskSpec, ...]
    include_paths: tuple[Path, ...] = ()
    notes: tuple[str, ...] = field(default=())  # how built-in tasks were made (fallbacks, sizes)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def search(self) -> list[TaskSpec]:
        """Scored tasks a search optimises."""
        return [s for s in self.specs if s.role in ("search", "both")]

    @property
    def report(self) -> list[TaskSpec]:
        """Scored tasks a report judges by."""
        return [s for s in self.specs if s.role in ("report", "both")]

    @property
    def losses(self) -> list[TaskSpec]:
        """Per-domain bits-per-byte tasks (run with every role)."""
        return [s for s in self.specs if s.role == "loss"]

    def for_role(self, role: EvalRole) -> list[TaskSpec]:
        """Every task an evaluation in ``role`` runs (scored tasks of that role plus the losses)."""
        if role not in ("search", "report", "all"):
            raise ValueError(f"role must be search, report or all, got {role!r}")
        return [s for s in self.specs if s.in_role(role)]

    def get(self, name: str) -> TaskSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise KeyError(name)

    def groups(self, role: EvalRole = "search") -> list[str]:
        """Capability groups that count in the objective of ``role``, sorted."""
        return sorted({s.group for s in self.for_role(role) if s.objective})

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": [s.to_json() for s in self.specs],
            "include_paths": [str(p) for p in self.include_paths],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TaskSuite:
        return cls(
            tuple(TaskSpec.from_json(t) for t in d["tasks"]),
            tuple(Path(p) for p in d.get("include_paths", [])),
            tuple(d.get("notes", [])),
        )
