"""law.combine: the forms r^p fitted together and averaged (ensemble) or the CV-best one (select).

Why it exists: which form ranks a larger model's mixtures best differs between data sets, while
cross-validation within one size always prefers one (docs/perf/law.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from demix.config import LawConfig
from demix.law import MixingLaw, fit, optimize
from demix.law.mixing import combine_weights, exponent_note
from demix.report.law import combine_sentence

SMALL = LawConfig(log_c_grid=(-2.0, 1.5, 3), log_k_grid=(-10.0, 1.0, 4), random_t=8, seed=0)


def _synthetic(p: float, n: int = 50, K: int = 4, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.normal(0, 0.6, (K, K)) - 1.5 * np.eye(K)
    R = rng.dirichlet(np.ones(K), n)
    L = rng.uniform(0.8, 1.5, K) + 0.5 * np.exp(R**p @ t.T) + rng.normal(0, 0.003, (n, K))
    return R, L


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_ensemble_weighs_the_form_the_data_follow_and_predicts_the_weighted_mean(p):
    R, L = _synthetic(p)
    law = fit(R, L, SMALL)
    assert SMALL.combine == "ensemble" and law.info["combine"] == "ensemble"
    w = {float(q): x for q, x in law.info["combine_weights"].items()}
    assert sum(w.values()) == pytest.approx(1.0) and w[p] > 0.5 and law.exponent == p
    assert [part.exponent for _, part in law.parts] == [1.0, 0.5]
    Rn = np.random.default_rng(9).dirichlet(np.ones(4), 20)
    mean = sum(x * part.predict(Rn) for x, part in law.parts)
    np.testing.assert_allclose(law.predict(Rn), mean)
    doc = json.loads(json.dumps(law.to_json()))
    assert doc["combine"]["method"] == "ensemble" and len(doc["parts"]) == 2
    np.testing.assert_allclose(MixingLaw.from_json(doc).predict(Rn), law.predict(Rn))
    # select keeps one form, the same one the ensemble weighs most
    one = fit(R, L, SMALL.model_copy(update={"combine": "select"}))
    assert not one.parts and one.exponent == p and one.to_json()["combine"]["method"] == "select"
    assert "parts" not in one.to_json()


def test_weights_follow_the_power_and_a_single_form_is_never_combined():
    cv = {"exponent_cv_mae": {"1.0": 0.2, "0.5": 0.1}}
    assert combine_weights(SMALL, cv) == pytest.approx({1.0: 0.2, 0.5: 0.8})  # power 2, the default
    assert combine_weights(SMALL.model_copy(update={"combine_power": 1.0}), cv) == pytest.approx(
        {1.0: 1 / 3, 0.5: 2 / 3}
    )
    assert combine_weights(SMALL.model_copy(update={"combine_power": 0.0}), cv) == pytest.approx(
        {1.0: 0.5, 0.5: 0.5}
    )
    assert combine_weights(SMALL.model_copy(update={"combine": "select"}), cv) is None
    R, L = _synthetic(0.5, n=30, K=3)
    law = fit(R, L, SMALL.model_copy(update={"exponents": (0.5,)}))
    assert not law.parts and law.info["combine"] == "select" and law.info["combine_weights"] == {"0.5": 1.0}


def test_the_ensemble_optimum_beats_random_mixtures():
    R, L = _synthetic(0.5)
    law = fit(R, L, SMALL, aggregate=np.full(4, 0.25))
    assert law.parts
    opt = optimize(law, starts=6)
    assert opt.r.sum() == pytest.approx(1.0) and (opt.r >= 0).all()
    pool = np.random.default_rng(1).dirichlet(np.ones(4), 500)
    assert opt.loss <= law.predict_aggregate(pool).min() + 1e-6
    assert opt.loss == pytest.approx(float(law.predict_aggregate(opt.r)[0]))


def test_the_report_and_the_cli_say_how_the_forms_were_combined():
    R, L = _synthetic(1.0, n=40, K=3)
    doc = fit(R, L, SMALL).to_json()
    note = exponent_note(doc["exponent"], doc["info"])
    assert note is not None and note.startswith("ensemble of the forms") and "p=1.0" in note
    sentence = combine_sentence(doc)
    assert sentence is not None and "ensemble" in sentence and "p=0.5 weight" in sentence
    single = fit(R, L, SMALL.model_copy(update={"combine": "select"})).to_json()
    assert "one form" in (combine_sentence(single) or "")
