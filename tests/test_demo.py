"""`make demo` as a user runs it: the whole pipeline on configs/demo.yaml, on CPU, then its outputs.

This is the suite's one end-to-end run at the demo's real size (about six minutes on two cores):
prepare, train the base and five components, a 24-trial search with DeMix's surrogate sampler, the
law check, the recommendation, the export and the report. It checks what the README promises the
demo shows, and that DeMix's recommendation, merged and scored as a new proxy on the report tasks
(held-out documents and items the search never saw), beats the uniform and the token-count prior
mixtures on them, and that the report's accuracy tasks separate the math and code components from
the base model.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("demo") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "demix", "run", str(REPO / "configs" / "demo.yaml"), "--run-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root, proc


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_demo_ends_by_printing_the_mixture_and_the_report(demo: tuple[Path, Any]) -> None:
    root, proc = demo
    mixture, report = root / "export" / "recommended_mixture.json", root / "report" / "report.html"
    assert f"recommended mixture: {mixture}" in proc.stdout
    assert f"report:              {report}" in proc.stdout
    assert mixture.is_file() and report.is_file()
    assert "Traceback" not in proc.stderr


def test_demo_exports_data_ratios_tokens_and_epochs(demo: tuple[Path, Any]) -> None:
    root, _ = demo
    doc = _json(root / "export" / "recommended_mixture.json")
    domains = doc["domains"]
    assert domains == ["prose", "code", "math", "comments", "tables"]
    assert sum(doc["ratios"].values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(doc["tokens"].values()) == doc["target_tokens"]
    assert set(doc["epochs"]) == set(domains)
    for d in domains:
        assert doc["epochs"][d] == pytest.approx(doc["tokens"][d] / doc["available_tokens"][d], rel=1e-3)
    # Data ratios, not merge weights: r = beta * general + (1 - beta) * w.
    w, beta = doc["merge_weights"], doc["beta"]
    for d in domains:
        expect = (1 - beta) * w[d] + (beta if d == doc["general"] else 0.0)
        assert doc["ratios"][d] == pytest.approx(expect, abs=1e-5)
    for name in (
        "recommended_mixture.yaml",
        "recommended_mixture.csv",
        "megatron_data_blend.txt",
        "hf_interleave.py",
    ):
        assert (root / "export" / name).stat().st_size > 0


def test_demo_recommendation_beats_uniform_and_prior_on_the_report_tasks(demo: tuple[Path, Any]) -> None:
    root, _ = demo
    rec = _json(root / "search" / "recommendation.json")
    report = rec["report"]
    ours, uniform, prior = (report[k]["objective"] for k in ("recommended", "uniform", "prior"))
    print(f"report objective: recommended {ours:.3f}, uniform {uniform:.3f}, prior {prior:.3f}")
    assert ours > uniform and ours > prior
    # The report scored other documents and items than the search optimised.
    assert all(name.endswith("_report") for name in report["recommended"]["metrics"])
    with (root / "search" / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sum(not r["baseline"] for r in rows) == 24  # search.n_trials, after the 7 baselines
    assert sum(bool(r["baseline"]) for r in rows) == 7


def test_demo_accuracy_tasks_separate_components_from_the_base(demo: tuple[Path, Any]) -> None:
    """The report's accuracy tasks move: the math and code components beat the base model on their own
    capability's task by far more than the items' standard error (~0.035 at 200 items)."""
    root, _ = demo
    report = _json(root / "search" / "recommendation.json")["report"]
    for component, task in (("code", "demix_order_code_report"), ("math", "demix_equation_math_report")):
        base, own = report["base_model"]["metrics"][task], report[f"only:{component}"]["metrics"][task]
        print(f"{task}: base model {base:.3f}, {component} component {own:.3f}")
        assert own - base >= 0.1
    md = (root / "report" / "report.md").read_text()
    assert "base_model" in md and "demix_order_code_report" in md
