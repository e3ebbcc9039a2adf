"""`demix law compare`, `--targets` and `law fit --plot` on a slice of RegMix's swarm (../shared/fixtures/regmix).

Slices (80 fitted rows, 1-2 targets, a small start grid) keep each test to a few seconds; the
full-size numbers are in docs/perf/law.md.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from demix.config import LawConfig
from demix.law import compare, read_table
from demix.report.plots import interaction_matrix
from tests.conftest import shared_fixture

FIX = shared_fixture("regmix")
TINY = ["--set", "law.log_c_grid=[-2,1.5,2]", "--set", "law.log_k_grid=[-10,1,3]", "--set", "law.random_t=4"]
TINY += ["--set", "law.cv_starts=24", "--set", "law.min_starts=24"]
CFG = LawConfig(log_c_grid=(-2, 1.5, 2), log_k_grid=(-10, 1, 3), random_t=4, cv_starts=24, min_starts=24)


def _demix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "demix", *args], capture_output=True, text=True)


def _head(src: Path, dst: Path, rows: int) -> Path:
    dst.write_text("\n".join(src.read_text().splitlines()[: rows + 1]) + "\n")
    return dst


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    d = tmp_path_factory.mktemp("regmix")
    return _head(FIX / "train-1m.csv", d / "train.csv", 80), _head(FIX / "test-60m.csv", d / "test.csv", 60)


def test_compare_on_folds_scores_every_method_on_the_same_rows(slices):
    table = read_table(slices[0]).select(["pile_cc"])
    doc = compare(table, CFG, folds=3)
    res = doc["results"]["pile_cc"]
    assert list(res) == ["law default (ensemble)", "law select (CV)", "law p=1", "law p=0.5",
                         "LightGBM (RegMix)", "linear"]  # fmt: skip
    assert all(np.isfinite([r["mae"], r["spearman"]]).all() for r in res.values())
    # The law is the right model of these data; a straight line is not.
    assert res["law default (ensemble)"]["spearman"] > max(0.9, res["linear"]["spearman"])
    assert res["law default (ensemble)"]["mae"] < res["linear"]["mae"]
    assert len(doc["law_combine"]) == 3 and "3 seeded folds (seed 0)" in doc["protocol"]
    # select is the CV-best form, the ensemble lies between the forms
    cv = doc["law_combine"]
    assert all(abs(sum(c["combine_weights"].values()) - 1) < 1e-9 for c in cv)
    lo, hi = sorted([res["law p=1"]["mae"], res["law p=0.5"]["mae"]])
    assert lo - 1e-9 <= res["law default (ensemble)"]["mae"] <= hi + 1e-9
    again = compare(table, CFG.model_copy(update={"combine": "select"}), folds=3)["results"]["pile_cc"]
    assert again["law default (select)"] == res["law select (CV)"]


def test_cli_compare_train_to_test_writes_one_table_and_json(slices, tmp_path):
    out = tmp_path / "cmp.json"
    r = _demix("law", "compare", str(slices[0]), "--test", str(slices[1]), "--targets", "pile_cc,github",
               "--out", str(out), *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "law compare: fit on" in r.stdout and "LightGBM (RegMix)" in r.stdout and "github" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["targets"] == ["pile_cc", "github"] and set(doc["results"]) == {"pile_cc", "github"}
    assert "evaluate on" in doc["protocol"] and "provenance" in doc
    assert doc["results"]["pile_cc"]["law default (ensemble)"]["spearman"] > 0.9


def test_unknown_target_or_bad_csv_exits_2_naming_it(slices, tmp_path):
    r = _demix("law", "compare", str(slices[0]), "--targets", "pile_cc,nope", *TINY)
    assert r.returncode == 2 and "'nope' is not a target" in r.stderr and "Traceback" not in r.stderr
    r = _demix("law", "fit", str(slices[0]), "--targets", "nope", "--out", str(tmp_path / "f.json"), *TINY)
    assert r.returncode == 2 and "'nope' is not a target" in r.stderr and not (tmp_path / "f.json").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("mix:a,mix:b,loss:a\n0.5,0.5,1.0\n0.5,0.5,abc\n")
    r = _demix("law", "compare", str(bad))
    assert r.returncode == 2 and "bad.csv" in r.stderr and "'abc' is not a number" in r.stderr


def test_fit_targets_and_plot(slices, tmp_path):
    fit_json, png = tmp_path / "fit.json", tmp_path / "t.png"
    r = _demix("law", "fit", str(slices[0]), "--targets", "pile_cc,github", "--out", str(fit_json),
               "--plot", str(png), *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(fit_json.read_text())
    assert doc["targets"] == ["pile_cc", "github"] and np.array(doc["t"]).shape == (2, 17)
    assert doc["combine"]["method"] == "ensemble" and set(doc["combine"]["weights"]) == {"1.0", "0.5"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in r.stdout


def test_interaction_matrix_is_drawn_readably_at_17_by_13():
    table = read_table(FIX / "test-1m.csv")
    t = np.random.default_rng(0).normal(0, 1, (len(table.targets), len(table.domains)))
    t[0, 0] = 40.0  # one extreme cell must not wash out the rest
    png = interaction_matrix(t, table.targets, table.domains, "t_ij")
    width, height = struct.unpack(">II", png[16:24])
    assert (len(table.targets), len(table.domains)) == (13, 17)
    assert width >= 17 * 50 and height >= 13 * 40  # room for a readable number in each cell
