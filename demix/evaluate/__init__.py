"""Scoring proxies with lm-eval-harness: the offline task suite, the live-model evaluator, scores.

* :func:`build_tasks` generates the run's built-in tasks (bits per byte per domain, accuracy tasks
  per capability group, split into search and report items) and lists the lm-eval tasks the config
  adds;
* :class:`Evaluator` runs lm-eval on a live model, wrapped once, evaluated after every in-place
  weight change;
* :mod:`demix.evaluate.scores` turns results into the objective (pure).

lm-eval, torch and transformers are imported only inside the functions that use them.
"""

from __future__ import annotations

from demix.evaluate import scores
from demix.evaluate.harness import Evaluator, load_checkpoint
from demix.evaluate.result import EvalResult, Metric
from demix.evaluate.spec import TaskSpec, TaskSuite
from demix.evaluate.tasks import build_tasks

__all__ = [
    "EvalResult",
    "Evaluator",
    "Metric",
    "TaskSpec",
    "TaskSuite",
    "build_tasks",
    "load_checkpoint",
    "scores",
]
