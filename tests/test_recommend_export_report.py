"""recommend / export / report on a hand-made run (trials.csv from a known objective), and the CLI.

The trials come from a synthetic objective peaked at a known mixture, so the recommendation has a
known right answer; the real surrogate (LightGBM), constraints, formats and plots run unchanged.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from demix.config import dump_config, load_config
from demix.errors import StageError
from demix.export.stage import export
from demix.mixture import weights_to_ratios
from demix.recommend import recommend
from demix.report import report
from demix.run import RunDir
from tests.conftest import tiny_config

DOMAINS = ["prose", "code", "math", "comments", "tables"]
COUNTS = {"prose": 4_000_000, "code": 3_000_000, "math": 2_000_000, "comments": 600_000, "tables": 1_000_000}


def _objective(W: np.ndarray, peak: np.ndarray) -> np.ndarray:
    return 1.0 - 3.0 * ((W - peak) ** 2).sum(axis=1)


def make_run(
    root: Path,
    *,
    peak: np.ndarray,
    n_search: int = 24,
    n_trials: int | None = None,
    near_peak: int = 0,
    **over: str,
) -> RunDir:
    """A run directory with config.yaml and search/trials.csv (no models: components brought elsewhere).

    ``near_peak`` of the search trials are drawn close to the peak (a search that converged there).
    """
    overrides = [f"search.token_counts={json.dumps(COUNTS)}", f"search.n_trials={n_trials or n_search}",
                 "export.bootstrap=5", *[f"{k}={v}" for k, v in over.items()]]  # fmt: skip
    cfg = tiny_config(root, *overrides)
    run = RunDir(root)
    root.mkdir(parents=True, exist_ok=True)
    run.config.write_text(dump_config(cfg))
    rng = np.random.default_rng(0)
    k = len(DOMAINS)
    prior = np.array([COUNTS[d] for d in DOMAINS], dtype=float)
    prior /= prior.sum()
    base = {"uniform": np.full(k, 1 / k), "prior": prior} | {
        f"only:{d}": np.eye(k)[i] for i, d in enumerate(DOMAINS)
    }
    near = rng.dirichlet(200 * peak + 1e-3, size=near_peak)
    W = np.vstack([*base.values(), rng.dirichlet(np.ones(k), size=n_search - near_peak), near])
    names = [*base, *[""] * n_search]
    y = _objective(W, peak)
    g1, g2 = y + 0.05 * W[:, 1], y - 0.05 * W[:, 1]
    head = ["trial", "state", "baseline", *[f"{p}:{d}" for p in ("w", "mix", "loss") for d in DOMAINS]]
    head += ["metric:acc", "objective", "objective:code", "objective:general", "merge_s", "eval_s"]
    lines = [",".join(head)]
    for i, w in enumerate(W):
        r = weights_to_ratios(w, DOMAINS, "prose", cfg.train.beta)
        loss = 2.0 - 0.5 * r
        vals = [i, "COMPLETE", names[i], *w, *r, *loss, y[i] / 2, y[i], g1[i], g2[i], 0.01, 0.1]
        lines.append(",".join(str(v) for v in vals))
    run.trials_csv.parent.mkdir(parents=True)
    run.trials_csv.write_text("\n".join(lines) + "\n")
    return run


def demix_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "demix", *map(str, args)], capture_output=True, text=True, timeout=300
    )


PEAK = np.array([0.1, 0.15, 0.6, 0.05, 0.1])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return make_run(tmp_path_factory.mktemp("synthetic"), peak=PEAK, **{"search.objectives": "groups"})


def test_recommend_side_by_side(synthetic: RunDir) -> None:
    cfg = load_config(synthetic.config)
    rec = recommend(cfg, synthetic)
    assert rec.choice == "surrogate_topk" and set(rec.candidates) == {"surrogate_topk", "best_trial"}
    for c in rec.candidates.values():
        assert c.r.sum() == pytest.approx(1.0) and c.r[0] >= cfg.train.beta - 1e-9
        np.testing.assert_allclose(c.r, weights_to_ratios(c.w, DOMAINS, "prose", cfg.train.beta))
        assert c.interval is not None and c.interval.shape == (5, 2)
        assert np.all(c.interval[:, 0] <= c.interval[:, 1] + 1e-12)
    best = rec.candidates["best_trial"]
    assert best.predicted["measured_objective"] == pytest.approx(1.0 - 3.0 * ((best.w - PEAK) ** 2).sum())
    # the surrogate's top-k mean lands nearer the peak than the token prior does
    top = rec.candidates["surrogate_topk"].w
    prior = np.array(list(COUNTS.values()), dtype=float) / sum(COUNTS.values())
    assert np.abs(top - PEAK).sum() < np.abs(prior - PEAK).sum()
    assert [p["trial"] for p in rec.pareto]  # groups present: a Pareto set
    cached = recommend(cfg, synthetic)  # read back from export/recommendation.json
    np.testing.assert_allclose(cached.chosen.r, rec.chosen.r)
    np.testing.assert_allclose(cached.chosen.interval, rec.chosen.interval)


def test_recommend_warns_at_the_beta_edge(tmp_path: Path) -> None:
    peak = np.array([0.0, 0.5, 0.3, 0.05, 0.15])  # no general merge weight: r_general = beta
    run = make_run(tmp_path / "edge", peak=peak, near_peak=8)
    cfg = load_config(run.config, ["export.bootstrap=0"])
    rec = recommend(cfg, run)
    assert any("beta edge" in w for w in rec.warnings)


def test_export_files(synthetic: RunDir) -> None:
    cfg = load_config(synthetic.config)
    paths = export(cfg, synthetic, target_tokens=1_000_000, progress=False)
    names = {p.name for p in paths}
    assert names == {"recommended_mixture.json", "recommended_mixture.yaml", "recommended_mixture.csv",
                     "megatron_data_blend.txt", "hf_interleave.py", "recommended_mixture.md"}  # fmt: skip
    doc = json.loads((synthetic.export / "recommended_mixture.json").read_text())
    assert doc["schema"] == "demix.recommended_mixture/v1"
    assert sum(doc["ratios"].values()) == pytest.approx(1.0, abs=1e-12)
    assert sum(doc["tokens"].values()) == 1_000_000
    assert doc["epochs"]["math"] == pytest.approx(doc["tokens"]["math"] / COUNTS["math"], rel=1e-3)
    assert doc["merge_weights"] is not None and doc["provenance"]["inputs"]["recommendation"]
    assert "best_trial" in doc["alternatives"]
    assert (
        yaml.safe_load((synthetic.export / "recommended_mixture.yaml").read_text())["ratios"] == doc["ratios"]
    )
    assert not any("epochs" in w for w in doc["warnings"])  # 1M tokens stay within 4 epochs of every source


def test_report_is_self_contained(synthetic: RunDir) -> None:
    cfg = load_config(synthetic.config)
    path = report(cfg, synthetic)
    html = path.read_text()
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(imgs) >= 4
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    assert "src='http" not in html and "<script" not in html
    md = (synthetic.report / "report.md").read_text()
    for stem in re.findall(r"\(plots/(\w+)\.png\)", md):
        assert (synthetic.report / "plots" / f"{stem}.png").is_file()
    assert "Recommended mixture" in md and "Pareto set" in md


def test_cli_recommend_export_report(tmp_path: Path) -> None:
    run = make_run(tmp_path / "cli", peak=PEAK, n_search=12)
    r = demix_cli("recommend", run.root)
    assert r.returncode == 0, r.stderr
    assert "surrogate_topk *" in r.stdout and "best_trial" in r.stdout
    r = demix_cli("export", run.root, "--tokens", "100B")
    assert r.returncode == 0, r.stderr
    assert "above export.max_epochs=4" in r.stderr and "at most" in r.stderr
    doc = json.loads((run.export / "recommended_mixture.json").read_text())
    assert doc["target_tokens"] == 100_000_000_000 and doc["warnings"]
    before = (run.export / "recommended_mixture.json").read_bytes()
    r = demix_cli("export", run.root, "--tokens", "1T", "--strict")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "export.strict_epochs" in r.stderr and "epochs of" in r.stderr and "--tokens" in r.stderr
    assert (run.export / "recommended_mixture.json").read_bytes() == before  # nothing overwritten
    r = demix_cli("report", run.root)
    assert r.returncode == 0, r.stderr
    assert (run.report / "report.html").is_file()


def test_cli_unfinished_search_is_exit_2(tmp_path: Path) -> None:
    run = make_run(tmp_path / "partial", peak=PEAK, n_search=5, n_trials=20)
    for cmd in ("export", "report"):
        r = demix_cli(cmd, run.root)
        assert r.returncode == 2, (cmd, r.stderr)
        assert "unfinished (5 of search.n_trials=20" in r.stderr and "Traceback" not in r.stderr
    run.trials_csv.unlink()
    r = demix_cli("recommend", run.root)
    assert r.returncode == 2 and "run `demix search` first" in r.stderr and "Traceback" not in r.stderr
    r = demix_cli("export", run.root, "--tokens", "lots")
    assert r.returncode == 2 and "--tokens" in r.stderr and "Traceback" not in r.stderr


def test_choose_law_without_law_is_a_stage_error(tmp_path: Path) -> None:
    run = make_run(tmp_path / "nolaw", peak=PEAK, n_search=6)
    cfg = load_config(run.config, ["export.choose=law", "export.bootstrap=0"])
    with pytest.raises(StageError, match=r"export\.choose=law"):
        recommend(cfg, run)


CHEAP_LAW = ["law.log_c_grid=[-2, 1.5, 2]", "law.log_k_grid=[-10, 1, 3]", "law.random_t=2", "law.check_splits=1",
             "law.optimize_starts=2"]  # fmt: skip


def test_recommend_with_the_law_and_report_section(tmp_path: Path) -> None:
    from demix.law import check

    run = make_run(tmp_path / "law", peak=PEAK, n_search=16)
    cfg = load_config(run.config, [*CHEAP_LAW, "export.choose=law"])
    check(cfg, run)
    rec = recommend(cfg, run)
    assert rec.choice == "law" and set(rec.candidates) == {"surrogate_topk", "best_trial", "law"}
    law = rec.chosen
    assert law.r.sum() == pytest.approx(1.0, abs=1e-6)
    assert law.interval is not None and law.interval.shape == (5, 2)
    assert all(np.isfinite(c.predicted["law_loss"]) for c in rec.candidates.values())
    # the synthetic losses fall as every share grows (loss = 2 - 0.5 r): the law predicts them
    best = rec.candidates["best_trial"]
    assert best.predicted["law_loss"] > 0
    md = (report(cfg, run).with_suffix(".md")).read_text()
    assert "Data-mixing law cross-check" in md and "plots/law_check.png" in md and "plots/law_t.png" in md


def test_report_shows_validation(tmp_path: Path) -> None:
    from demix.util.io import write_json_atomic
    from demix.validate.metrics import fidelity, task_table

    run = make_run(tmp_path / "val", peak=PEAK, n_search=8)
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.2, 0.8, size=(6, 2))
    rows = lambda v: [{"a": {"value": x, "group": "code"}, "b": {"value": y, "group": "math"}} for x, y in v]  # noqa: E731
    fid = fidelity(task_table(rows(ref * 0.9)), task_table(rows(ref)), replicates=20, seed=0)
    write_json_atomic(
        run.validation / "validation.json", {"n": 6, "reference_tokens": 1000, "fidelity": fid.to_json()}
    )
    md = report(load_config(run.config, ["export.bootstrap=0"]), run).with_suffix(".md").read_text()
    assert "## Validation against trained references" in md and "plots/proxy_vs_reference.png" in md
    assert "| macro | 1.00 [1.00, 1.00] |" in md


def test_uses_the_search_recommendation_when_present(tmp_path: Path) -> None:
    from demix.util.io import write_json_atomic

    run = make_run(tmp_path / "rec", peak=PEAK, n_search=8)
    w = dict(zip(DOMAINS, [0.1, 0.2, 0.4, 0.1, 0.2], strict=True))
    report_scores = {
        "recommended": {"objective": 0.7, "objectives": {"code": 0.7}},
        "uniform": {"objective": 0.2},
    }
    write_json_atomic(
        run.search / "recommendation.json", {"w": w, "predicted_objective": 0.9, "report": report_scores}
    )
    cfg = load_config(run.config, ["export.bootstrap=0"])
    rec = recommend(cfg, run)
    np.testing.assert_allclose(rec.chosen.w, list(w.values()))
    assert rec.chosen.predicted["surrogate_objective"] == 0.9 and rec.search_report == report_scores
    md = report(cfg, run).with_suffix(".md").read_text()
    assert "held-out report tasks" in md and "| recommended | 0.7000 | code 0.700 |" in md


def test_report_sections_read_only_the_summary(tmp_path: Path) -> None:
    import shutil

    from demix.report import summarize
    from demix.report.build import build_sections

    run = make_run(tmp_path / "sum", peak=PEAK, n_search=8)
    cfg = load_config(run.config, ["export.bootstrap=0"])
    summary = summarize(cfg, run)
    assert (
        summary.recommendation.domains == DOMAINS and len(summary.trials) == summary.recommendation.n_trials
    )
    np.testing.assert_allclose(summary.token_counts, [COUNTS[d] for d in DOMAINS])
    assert summary.exported is None and summary.law_check is None and summary.validation is None
    shutil.rmtree(run.root)  # the sections never go back to the run directory
    titles = [s.title for s in build_sections(summary)]
    assert titles == ["Recommended mixture", "Three recommendations side by side", "Search"]
