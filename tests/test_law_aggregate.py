"""The overall loss: weights learned from a ``loss:overall`` column, and the gauge-free fit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from demix.config import LawConfig
from demix.errors import DemixError
from demix.law import OVERALL, fit, fit_with_overall, split_overall

SMALL = LawConfig(log_c_grid=(-2.0, 1.5, 3), log_k_grid=(-10.0, 1.0, 4), random_t=8, seed=0)
S_TRUE = np.array([0.6, 0.3, 0.1, 0.0])


def _law(K: int = 4, n: int = 40, noise: float = 0.002, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, 1.0, (K, K)) - 2.0 * np.eye(K)
    c, k = rng.uniform(0.8, 1.5, K), rng.uniform(0.3, 0.8, K)
    R = rng.dirichlet(np.ones(K), n)

    def true(Rn: np.ndarray) -> np.ndarray:
        return c + k * np.exp(Rn @ t.T)

    return R, true(R) + rng.normal(0.0, noise, (n, K)), true, t


def test_split_overall_separates_the_column():
    L = np.arange(6.0).reshape(2, 3)
    names, Ld, y = split_overall(["a", OVERALL, "b"], L)
    assert names == ["a", "b"] and Ld.tolist() == [[0, 2], [3, 5]] and y.tolist() == [1, 4]
    assert split_overall(["a"], L[:, :1])[2] is None


def test_learned_weights_recover_the_validation_mix_and_predict_the_overall_loss():
    R, L, true, _ = _law()
    y = L @ S_TRUE + np.random.default_rng(1).normal(0.0, 0.001, len(R))
    law = fit_with_overall(R, L, y, SMALL, domains=list("abcd"), targets=list("abcd"))
    assert law.aggregate is not None
    np.testing.assert_allclose(law.aggregate, S_TRUE, atol=0.03)
    assert law.info["aggregate"]["source"].startswith("learned") and law.info["aggregate"]["rows"] == 40
    Rn = np.random.default_rng(2).dirichlet(np.ones(4), 20)
    assert np.abs(law.predict_aggregate(Rn) - true(Rn) @ S_TRUE).mean() < 0.01
    # Given weights win over learning; the report says how well they explain the measured overall loss.
    given = fit_with_overall(R, L, y, SMALL, domains=list("abcd"), targets=list("abcd"), aggregate=np.ones(4))
    assert given.info["aggregate"]["source"] == "given" and given.info["aggregate"]["measured_mae"] > 0.05


def test_overall_only_fits_one_law_to_it():
    R, L, _true, _ = _law(K=3)
    y = L @ S_TRUE[:3]
    law = fit_with_overall(R, np.empty((len(R), 0)), y, SMALL, domains=list("abc"), targets=[])
    assert law.targets == [OVERALL] and law.aggregate is not None and law.aggregate.tolist() == [1.0]
    assert np.abs(law.predict_aggregate(R) - y).mean() < 0.02


def test_learning_weights_needs_rows_with_everything_measured():
    R, L, *_ = _law(n=10)
    y = np.full(len(R), np.nan)
    y[0] = 2.0
    with pytest.raises(DemixError, match="at least 2 rows"):
        fit_with_overall(R, L, y, SMALL, domains=list("abcd"), targets=list("abcd"))


def test_unpenalised_fit_is_well_posed():
    """Σ r = 1 makes log k a shift of t; with it folded in, ridge=0 (the paper's fit) solves."""
    R, L, _, t = _law(n=60)
    law = fit(R, L, SMALL.model_copy(update={"ridge": 0.0}))
    want = t - t.mean(axis=1, keepdims=True)
    assert np.all(np.isfinite(law.t)) and np.corrcoef(law.t.ravel(), want.ravel())[0, 1] > 0.98
    np.testing.assert_allclose(law.t.mean(axis=1), 0.0, atol=1e-9)


def test_cli_learns_weights_from_overall_column(tmp_path):
    R, L, true, _ = _law(K=3, n=30)
    s = S_TRUE[:3]
    y = L @ s
    head = ["mix:a", "mix:b", "mix:c", "loss:a", "loss:b", "loss:c", f"loss:{OVERALL}"]
    rows = [",".join(f"{v:.8f}" for v in (*R[i], *L[i], y[i])) for i in range(len(R))]
    (tmp_path / "m.csv").write_text("\n".join([",".join(head), *rows]) + "\n")
    (tmp_path / "only.csv").write_text(
        "\n".join(
            [
                "mix:a,mix:b,mix:c,loss:overall",
                *(",".join([*r.split(",")[:3], r.split(",")[-1]]) for r in rows),
            ]
        )
        + "\n"
    )
    Rn = np.random.default_rng(5).dirichlet(np.ones(3), 5)
    (tmp_path / "new.csv").write_text(
        "\n".join(["mix:a,mix:b,mix:c", *(",".join(f"{v:.8f}" for v in r) for r in Rn)]) + "\n"
    )
    for name in ("m", "only"):
        fit_json = tmp_path / f"{name}.json"
        cmd = [
            sys.executable,
            "-m",
            "demix",
            "law",
            "fit",
            str(tmp_path / f"{name}.csv"),
            "--out",
            str(fit_json),
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "overall loss:" in r.stdout
        doc = json.loads(fit_json.read_text())
        if name == "m":
            np.testing.assert_allclose(doc["aggregate"], s, atol=0.03)
        else:
            assert doc["targets"] == [OVERALL]
        out = tmp_path / f"{name}-pred.csv"
        cmd = [
            sys.executable,
            "-m",
            "demix",
            "law",
            "predict",
            str(fit_json),
            str(tmp_path / "new.csv"),
            "--out",
            str(out),
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        lines = out.read_text().splitlines()
        assert lines[0].endswith(",pred:aggregate")
        pred = np.array([float(x.split(",")[-1]) for x in lines[1:]])
        assert np.abs(pred - true(Rn) @ s).mean() < 0.03
