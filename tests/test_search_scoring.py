"""A synthetic scorer for the search's pure logic (samplers, storage, workers, crash recovery), and
tests of the objective normalisation. The real merge + lm-eval path is tested in test_search_real.py.

The synthetic score is a smooth function of w with an interior optimum, so samplers and the
surrogate have something to find; a delay makes trials slow enough to kill one mid-flight.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from demix.config import ExperimentConfig, load_config
from demix.evaluate.result import Metric
from demix.evaluate.scores import group_objectives, normalized_tasks, objective
from demix.run import RunDir
from demix.search.scoring import Score

TESTS_ROOT = Path(__file__).resolve().parent
DOMAINS = ["prose", "code", "math", "tables"]
COUNTS = {"prose": 4_000_000, "code": 2_000_000, "math": 1_000_000, "tables": 3_000_000}
# Each task prefers a different mixture; the best compromise is interior.
OPTIMA = {
    "general": np.array([0.55, 0.1, 0.1, 0.25]),
    "code": np.array([0.3, 0.5, 0.1, 0.1]),
    "math": np.array([0.3, 0.1, 0.5, 0.1]),
}


def synthetic_config(tmp: Path, *overrides: str, **search: Any) -> tuple[Path, ExperimentConfig]:
    """A config over four never-prepared domains with token counts given, run dir under tmp."""
    data = {
        "name": "synth",
        "run_dir": str(tmp / "run"),
        "corpora": {
            "candidates": [{"name": d, "sources": [{"builtin": d}]} for d in DOMAINS],
            "general": "prose",
        },
        "search": {"sampler": "random", "n_trials": 6, "token_counts": COUNTS, **search},
        "export": {"target_tokens": "10M", "max_epochs": 4},
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "synth.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, load_config(path, list(overrides))


class SyntheticScorer:
    """Scorer protocol over a closed-form score; ``delay`` seconds per call."""

    def __init__(self, cfg: ExperimentConfig, run: RunDir, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0

    def groups(self, role: str = "search") -> list[str]:
        return sorted(OPTIMA)

    def score(self, w: np.ndarray, role: str = "search") -> Score:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        w = np.asarray(w, dtype=np.float64)
        shift = 0.02 if role == "report" else 0.0
        metrics = {}
        for g, opt in OPTIMA.items():
            metrics[f"{g}_acc"] = Metric(0.8 - float(np.sum((w - opt) ** 2)) + shift, None, "higher", g)
        metrics["math_loss"] = Metric(1.0 + float(np.sum((w - OPTIMA["math"]) ** 2)), None, "lower", "math")
        bpb = {d: 2.0 - 0.8 * float(w[i]) for i, d in enumerate(DOMAINS)}
        return Score(metrics, bpb, merge_s=0.001, eval_s=self.delay)


def slow_scorer(cfg: ExperimentConfig, run: RunDir) -> SyntheticScorer:
    return SyntheticScorer(cfg, run, delay=0.25)


def test_objective_normalises_against_baselines() -> None:
    def s(acc: float, loss: float) -> Score:
        return Score({"a": Metric(acc, None, "higher", "g1"), "l": Metric(loss, None, "lower", "g2")})

    base = {"x": s(0.2, 3.0), "y": s(0.6, 1.0)}
    norm = normalized_tasks(s(0.4, 2.0), base)
    assert norm == pytest.approx({"a": 0.5, "l": 0.5})
    assert normalized_tasks(s(0.8, 0.0), base) == pytest.approx({"a": 1.5, "l": 1.5})  # beyond best: kept
    assert group_objectives(s(0.6, 3.0), base) == {"g1": 1.0, "g2": 0.0}
    assert objective(s(0.6, 3.0), base) == 0.5
    assert objective(base["x"], base) == 0.0


def test_synthetic_scorer_has_an_interior_optimum() -> None:
    sc = SyntheticScorer(None, None)  # type: ignore[arg-type]
    uniform, best = sc.score(np.full(4, 0.25)), sc.score(np.array([0.4, 0.22, 0.22, 0.16]))
    base = {"u": uniform, "one": sc.score(np.eye(4)[0])}
    assert objective(best, base) > objective(uniform, base)
