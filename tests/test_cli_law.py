"""`demix law` through the real console script: fit / predict / optimize / check, and bad CSVs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from demix.config import load_config
from demix.law import check, read_table
from demix.mixture import as_dict
from demix.run import RunDir

SMALL = ["--set", "law.log_c_grid=[-2,1.5,2]", "--set", "law.log_k_grid=[-10,1,3]", "--set", "law.random_t=4"]


def _demix(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "demix", *args], capture_output=True, text=True, cwd=cwd)


def _write_csv(path: Path, names: list[str], n: int = 30, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    K = len(names)
    t = rng.normal(0, 1, (K, K)) - 2 * np.eye(K)
    R = rng.dirichlet(np.ones(K), n)
    L = 1.0 + 0.5 * np.exp(R @ t.T) + rng.normal(0, 0.002, (n, K))
    head = ["trial", "state"] + [f"mix:{d}" for d in names] + [f"loss:{d}" for d in names]
    lines = [",".join(head)]
    for i in range(n):
        lines.append(",".join([str(i), "COMPLETE"] + [f"{v:.8f}" for v in R[i]] + [f"{v:.6f}" for v in L[i]]))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "mix:a,mix:b,loss:a\n0.5,0.6,1.0\n",
            "1 of 1 rows, columns 'mix:a'..'mix:b': proportions do not sum to 1",
        ),
        ("mix:a,mix:b\n0.5,0.5\n", "missing columns: no 'loss:"),
        ("loss:a\n1.0\n", "missing columns: no 'mix:"),
        ("mix:a,mix:b,loss:a\n0.5,0.5,1.0\n0.5,0.5,abc\n", "row 2, column 'loss:a': 'abc' is not a number"),
        ("mix:a,mix:b,loss:a\n0.5,x,1.0\n", "row 1, column 'mix:b'"),
    ],
)
def test_bad_csv_exits_2_naming_row_and_column(tmp_path, text, needle):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    r = _demix("law", "fit", str(p), "--out", str(tmp_path / "fit.json"))
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_fit_predict_optimize_roundtrip(tmp_path):
    names = ["a", "b", "c"]
    _write_csv(tmp_path / "m.csv", names)
    (tmp_path / "w.json").write_text(json.dumps({"a": 0.5, "b": 0.3, "c": 0.2}))
    fit_json = tmp_path / "law.json"
    r = _demix(
        "law",
        "fit",
        str(tmp_path / "m.csv"),
        "--out",
        str(fit_json),
        "--loss-weights",
        str(tmp_path / "w.json"),
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(fit_json.read_text())
    assert np.array(doc["t"]).shape == (3, 3) and doc["aggregate"] == pytest.approx([0.5, 0.3, 0.2])
    assert "provenance" in doc
    assert doc["exponent"] == 1.0 and "5-fold cross-validation" in r.stdout  # data from r, not √r
    assert doc["combine"]["method"] == "ensemble" and doc["combine"]["weights"]["1.0"] > 0.5
    # --set law.* applies without --config; a bad value exits 2 naming the key and leaves the fit as it was.
    before = fit_json.read_bytes()
    r = _demix("law", "fit", str(tmp_path / "m.csv"), "--out", str(fit_json), "--set", "law.exponents=[1.5]")
    assert r.returncode == 2 and "law.exponents" in r.stderr and "Traceback" not in r.stderr
    assert fit_json.read_bytes() == before
    r = _demix(
        "law",
        "fit",
        str(tmp_path / "m.csv"),
        "--out",
        str(tmp_path / "p1.json"),
        "--set",
        "law.exponents=[0.5]",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "p1.json").read_text())["exponent"] == 0.5
    (tmp_path / "mixes.csv").write_text("name,mix:a,mix:b,mix:c\nu,0.3333,0.3333,0.3334\nx,1,0,0\n")
    r = _demix("law", "predict", str(fit_json), str(tmp_path / "mixes.csv"), "--out", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "name,mix:a,mix:b,mix:c,pred:a,pred:b,pred:c,pred:aggregate" and lines[1].startswith(
        "u,"
    )
    r = _demix("law", "optimize", str(fit_json), "--out", str(tmp_path / "opt.json"))
    assert r.returncode == 0, r.stderr
    assert sum(json.loads((tmp_path / "opt.json").read_text())["r"].values()) == pytest.approx(1.0)
    (tmp_path / "bad.csv").write_text("mix:a,mix:b,mix:z\n0.5,0.5,0\n")
    r = _demix("law", "predict", str(fit_json), str(tmp_path / "bad.csv"), "--out", str(tmp_path / "q.csv"))
    assert r.returncode == 2 and "mix:c" in r.stderr


def test_check_writes_report_and_flags_disagreement(tmp_path):
    cfg = load_config(
        "tests/configs/tiny.yaml",
        [
            "law.log_c_grid=[-2,1.5,2]",
            "law.log_k_grid=[-10,1,3]",
            "law.random_t=4",
            "law.disagreement_tolerance=0.05",
        ],
    )
    run = RunDir(tmp_path / "run")
    run.search.mkdir(parents=True)
    _write_csv(run.trials_csv, cfg.domains, n=24, seed=3)
    far = np.zeros(len(cfg.domains))
    far[0] = 1.0
    (run.search / "recommendation.json").write_text(
        json.dumps({"w": as_dict(far, cfg.domains), "r": as_dict(far, cfg.domains)})
    )
    doc = check(cfg, run)
    assert (run.law / "check.json").is_file() and (run.law / "fit.json").is_file()
    assert doc["holdout"]["held_out"] == 6 and len(doc["holdout"]["splits"]) == 3
    assert doc["holdout"]["mean"]["spearman"] > 0.5
    assert doc["comparison"]["disagree"] is True and doc["verdict"].startswith("DISAGREE")
    assert sum(doc["law_optimum"]["r"].values()) == pytest.approx(1.0)
    assert read_table(run.trials_csv).R.shape == (24, len(cfg.domains))
    # The real command on a run directory (its config.yaml) writes the same files.
    (run.root / "config.yaml").write_text(Path("tests/configs/tiny.yaml").read_text())
    r = _demix("law", "check", str(run.root), *SMALL)
    assert r.returncode == 0, r.stderr
    assert "held-out" in r.stdout and "DISAGREE" in r.stdout


def test_fit_on_validation_references(tmp_path):
    rng = np.random.default_rng(4)
    names = ["a", "b", "c"]
    t = rng.normal(0, 1, (3, 3)) - 2 * np.eye(3)
    R = rng.dirichlet(np.ones(3), 12)
    L = 1.0 + 0.5 * np.exp(R @ t.T)
    mixtures = [
        {"id": f"val-{i}", "r": as_dict(R[i], names), "reference_bpb": as_dict(L[i], names)}
        for i in range(12)
    ]
    run = RunDir(tmp_path / "run")
    run.validation.mkdir(parents=True)
    (run.validation / "validation.json").write_text(json.dumps({"domains": names, "mixtures": mixtures}))
    r = _demix("law", "fit", str(run.root), "--references", "--out", str(tmp_path / "ref.json"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "ref.json").read_text())
    assert doc["mixtures_fitted"] == 12 and doc["source"].endswith("validation.json")
    got, want = np.array(doc["t"]).ravel(), (t - t.mean(axis=1, keepdims=True)).ravel()
    assert np.corrcoef(got, want)[0, 1] > 0.98 and np.abs(got - want).max() < 0.4
