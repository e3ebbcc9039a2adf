"""The law on losses measured in the Data Mixing Laws paper (../shared/fixtures/mixing-laws)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from demix.config import LawConfig
from demix.law import at_target, fit, nested_extrapolate, read_table, tidy_to_wide
from tests.conftest import shared_fixture

FIX = shared_fixture("mixing-laws")
# The paper's grid shape with fewer points, to keep the test cheap (the CLI default is 10 x 20 x 30).
CFG = LawConfig(log_c_grid=(-2.0, 1.5, 3), log_k_grid=(-10.0, 1.0, 6), random_t=10, seed=0)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = tmp_path_factory.mktemp("law") / "pile.csv"
    tidy_to_wide(FIX / "pile-5domains.csv", out)
    return read_table(out)


@pytest.fixture(scope="module")
def at70m(table):
    ext = at_target(table.R, table.L, table.step, table.size, target_step=30000, target_size=7e7)
    weights = json.loads((FIX / "pile-valid-weights.json").read_text())
    s = np.array([weights[t] for t in table.targets])
    return ext.R, ext.L, s / s.sum()


def test_converter_and_selection(table, at70m):
    R, L, _ = at70m
    assert table.domains == ["r1", "r2", "r3", "r4", "r5"] and len(table.targets) == 22
    assert R.shape == (26, 5) and L.shape == (26, 22) and np.isfinite(L).all()


def _holdout_maes(R, L, s, cfg):
    y = L @ s
    maes, laws = [], []
    for seed in (0, 1, 2):
        perm = np.random.default_rng(seed).permutation(len(R))
        tr, te = perm[:20], perm[20:]
        law = fit(R[tr], L[tr], cfg, aggregate=s)
        maes.append(float(np.mean(np.abs(law.predict_aggregate(R[te]) - y[te]))))
        laws.append(law)
    print(cfg.exponents, "held-out MAE per split", np.round(maes, 4), "mean", round(float(np.mean(maes)), 4))
    return np.array(maes), laws


def test_holdout_error_on_measured_losses(at70m):
    """Fit on 20 mixtures, predict the 6 others (3 seeded splits): overall-loss MAE.

    The default lets 5-fold cross-validation on the 20 fitted mixtures choose between r and √r;
    it chooses √r on every split and roughly halves the paper's law's error.
    """
    R, L, s = at70m
    maes, laws = _holdout_maes(R, L, s, CFG)
    # Measured: 0.0034, 0.0066, 0.0176 (mean 0.0092); more splits and the 160M-410M runs in
    # docs/perf/law.md.
    assert np.mean(maes) <= 0.012
    assert all(law.exponent == 0.5 for law in laws)
    assert all(law.info["exponent_cv_mae"]["0.5"] < law.info["exponent_cv_mae"]["1.0"] for law in laws)
    paper, _ = _holdout_maes(R, L, s, CFG.model_copy(update={"exponents": (1.0,)}))
    # The paper's law alone: 0.0098, 0.0156, 0.0432 (mean 0.0229). Split 2 holds out mixtures with
    # two domains at 0, where exp(t·r) extrapolates too low (docs/perf/law.md).
    assert np.mean(paper) <= 0.025
    assert max(paper) <= 0.047
    assert np.mean(maes) < 0.5 * np.mean(paper)


# The paper's notebook (mix_5_domains.ipynb) fits one law per group of validation subsets.
GROUPS = {
    "academic": [
        "ArXiv",
        "PubMed_Abstracts",
        "PhilPapers",
        "NIH_ExPorter",
        "FreeLaw",
        "USPTO_Backgrounds",
        "PubMed_Central",
    ],
    "prose": ["PG19", "Books3", "BookCorpus2"],
    "dialogue": ["Ubuntu_IRC", "OpenSubtitles", "EuroParl", "Enron_Emails", "HackerNews", "YoutubeSubtitles"],
    "symbolic": ["DM_Mathematics", "Github"],
    "internet": ["Pile-CC", "OpenWebText2", "StackExchange", "Wikipedia_en"],
}
# What the notebook printed for each group: log c, and its training loss (mean Huber, delta 0.05).
NOTEBOOK_LOG_C = [0.9750, 1.2624, 1.1375, 0.4750, 1.2402]
NOTEBOOK_HUBER = [5.682876e-4, 1.233430e-4, 5.513424e-4, 1.428199e-4, 8.165961e-5]


def test_reproduces_the_paper_notebook_fit(table, at70m):
    """The notebook's protocol: 5 groups, all 26 mixtures fitted, delta 0.05, no penalty.

    Our solver reaches the notebook's optimum (same c, a training loss no higher), and its overall
    loss error is in-sample: 0.0116 over all 26 mixtures (the notebook's 0.0086 is over 6 of them).
    """
    R, L, s = at70m
    G = np.zeros((len(table.targets), len(GROUPS)))
    for g, names in enumerate(GROUPS.values()):
        G[[table.targets.index(n) for n in names], g] = s[[table.targets.index(n) for n in names]]
    sg = G.sum(axis=0)
    Lg = L @ (G / sg)
    paper = CFG.model_copy(update={"huber_delta": 0.05, "ridge": 0.0, "exponents": (1.0,)})
    law = fit(R, Lg, paper, aggregate=sg)
    res = np.abs(law.predict(R) - Lg)
    q = np.minimum(res, 0.05)
    huber = (q * (res - 0.5 * q)).mean(axis=0)
    print("mean Huber ours / notebook", np.round(huber / NOTEBOOK_HUBER, 6))
    assert np.all(huber <= np.array(NOTEBOOK_HUBER) * 1.0001)
    np.testing.assert_allclose(np.log(law.c), NOTEBOOK_LOG_C, atol=2e-3)
    mae = float(np.mean(np.abs(law.predict_aggregate(R) - L @ s)))
    print("in-sample MAE (all 26 mixtures)", round(mae, 4))
    assert mae <= 0.012


def test_step_law_extrapolates_to_30000_steps(table):
    """Step curves of 160M runs up to 20k steps predict the measured loss at 30k steps.

    Measured (all 22 domains): 1.1% mean relative error at 160M, 1.6% at 70M; the test uses the
    8 largest validation subsets to stay cheap.
    """
    v = np.argsort([-w for w in json.loads((FIX / "pile-valid-weights.json").read_text()).values()])[:8]
    names = np.array(list(json.loads((FIX / "pile-valid-weights.json").read_text())))[v]
    cols = [table.targets.index(t) for t in names]
    sel = (table.size == 1.6e8) & (table.step <= 20000)
    ext = nested_extrapolate(
        table.R[sel], table.L[sel][:, cols], table.step[sel], None, target_step=30000, target_size=None
    )
    meas = at_target(table.R, table.L[:, cols], table.step, table.size, target_step=30000, target_size=1.6e8)
    got = {tuple(np.round(r, 6)): row for r, row in zip(ext.R, ext.L, strict=True)}
    rel = [
        np.mean(np.abs(got[tuple(np.round(r, 6))] - row) / row) for r, row in zip(meas.R, meas.L, strict=True)
    ]
    print("160M relative error at 30k steps", round(float(np.mean(rel)), 4))
    assert ext.curves == 26 * 8
    assert np.mean(rel) < 0.02
