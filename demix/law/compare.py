"""``demix law compare``: the law's forms beside LightGBM (RegMix's settings) and linear regression (pure).

Every method sees the same rows: k seeded folds of one table, or a fit on one table and an
evaluation on another (e.g. 1M runs → the same mixtures at 60M, the question every user of a law
asks: do its rankings hold at a larger size?). Per target and method: mean absolute error and
Spearman's rho of the predictions on the held-out rows (the mean over folds). One law fit per
split gives every law row: the fit scores each form by cross-validation and fits all of them
(:func:`demix.law.mixing.fit` with ``combine: ensemble``), so the ensemble, the CV-selected
form and each form r^p are read off the same fit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import DemixError
from demix.law.mixing import MixingLaw, fit
from demix.util.stats import spearman

if TYPE_CHECKING:
    from demix.config.law import LawConfig
    from demix.law.table import LawTable

LIGHTGBM = "LightGBM (RegMix)"
LINEAR = "linear"


def parse_targets(text: str | None) -> list[str] | None:
    """``pile_cc,github`` -> ['pile_cc', 'github'] (a leading ``loss:`` is allowed); None: all."""
    if text is None:
        return None
    return [t.strip().removeprefix("loss:") for t in text.split(",") if t.strip()]


def lightgbm(R: np.ndarray, y: np.ndarray, seed: int = 42) -> Any:
    """RegMix's regressor (sail-sg/regmix, regression_fitting/regression.ipynb): LGBMRegressor, gbdt,
    objective regression, metric l1 + l2, 1000 rounds, learning rate 0.01, seed 42, early stopping
    after 3 rounds without l2 gain on a held-out part of the fitted rows (theirs: the first 128 of
    1000; here a seeded 20%, never the evaluated rows), one thread."""
    import warnings

    import lightgbm as lgb

    params: dict[str, Any] = {"task": "train", "boosting_type": "gbdt", "objective": "regression", "metric": ["l1", "l2"],
              "num_iterations": 1000, "seed": seed, "learning_rate": 1e-2, "verbosity": -1, "n_jobs": 1}  # fmt: skip
    perm = np.random.default_rng(seed).permutation(len(R))
    va, tr = perm[: max(1, len(R) // 5)], perm[max(1, len(R) // 5) :]
    gbm = lgb.LGBMRegressor(**params)
    with (
        warnings.catch_warnings()
    ):  # 4.7 renames eval_set (eval_X / eval_y); 4.0, which we allow, has only it
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return gbm.fit(R[tr], y[tr], eval_set=[(R[va], y[va])], eval_metric="l2",
                       callbacks=[lgb.early_stopping(stopping_rounds=3, verbose=False)])  # fmt: skip


def _per_target(R: np.ndarray, L: np.ndarray, Rt: np.ndarray, model: str) -> np.ndarray:
    """(m, V) predictions at Rt of one regressor per target fitted on its measured rows."""
    out = np.full((len(Rt), L.shape[1]), np.nan)
    for v in range(L.shape[1]):
        ok = np.isfinite(L[:, v])
        if model == LINEAR:  # rows sum to 1: no intercept (it is the mean of the coefficients)
            coef = np.linalg.lstsq(R[ok], L[ok, v], rcond=None)[0]
            out[:, v] = Rt @ coef
        else:
            out[:, v] = lightgbm(R[ok], L[ok, v]).predict(Rt)
    return out


def _law_predictions(law: MixingLaw, Rt: np.ndarray, default: str) -> dict[str, np.ndarray]:
    """Every law row from one ensemble fit: the default, the other way to combine, each form r^p."""
    forms = {f"law p={part.exponent:g}": part.predict(Rt) for _, part in law.forms}
    if len(forms) == 1:
        return {f"law default (p={law.exponent:g})": law.predict(Rt)}
    cv = law.info["exponent_cv_mae"]
    ens, sel = law.predict(Rt), forms[f"law p={float(min(cv, key=lambda p: float(cv[p]))):g}"]
    rows = (
        {"law default (ensemble)": ens, "law select (CV)": sel}
        if default == "ensemble"
        else {"law default (select)": sel, "law ensemble": ens}
    )
    return rows | forms


def _split(
    train: LawTable, tr: np.ndarray, Rt: np.ndarray, cfg: LawConfig, methods: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, Any]]:
    """Predictions (m, V) at Rt of every method fitted on rows ``tr``; seconds; the law's combine record."""
    default = cfg.combine if len(cfg.exponents) > 1 else "select"
    ens = cfg.model_copy(update={"combine": "ensemble"})
    t0 = time.perf_counter()
    law = fit(train.R[tr], train.L[tr], ens, domains=train.domains, targets=train.targets)
    secs = {"law (cross-validation + every form)": time.perf_counter() - t0}
    preds = _law_predictions(law, Rt, default)
    for m in methods:
        t0 = time.perf_counter()
        preds[m] = _per_target(train.R[tr], train.L[tr], Rt, m)
        secs[m] = time.perf_counter() - t0
    record = {k: law.info.get(k) for k in ("exponent_cv_mae", "combine_weights")}
    return preds, secs, record


def _scores(P: np.ndarray, Y: np.ndarray) -> list[tuple[float, float]]:
    """(MAE, Spearman) per target over the rows where the loss was measured."""
    out = []
    for v in range(Y.shape[1]):
        ok = np.isfinite(Y[:, v]) & np.isfinite(P[:, v])
        mae = float(np.mean(np.abs(P[ok, v] - Y[ok, v]))) if ok.any() else float("nan")
        out.append((mae, spearman(P[ok, v], Y[ok, v])))
    return out


def _aligned(train: LawTable, test: LawTable) -> tuple[np.ndarray, np.ndarray]:
    """The test table's R in the train table's domain order and its L in its target order."""
    if set(test.domains) != set(train.domains):
        extra = sorted(set(test.domains) ^ set(train.domains))
        raise DemixError(f"--test {test.source}: mix: columns differ from {train.source} (e.g. {extra[0]!r})")
    missing = [t for t in train.targets if t not in test.targets]
    if missing:
        raise DemixError(f"--test {test.source}: no 'loss:{missing[0]}' column")
    R = test.R[:, [test.domains.index(d) for d in train.domains]]
    return R, test.L[:, [test.targets.index(t) for t in train.targets]]


def compare(
    train: LawTable,
    cfg: LawConfig,
    *,
    test: LawTable | None = None,
    folds: int = 5,
    methods: Sequence[str] = (LIGHTGBM, LINEAR),
) -> dict[str, Any]:
    """MAE and Spearman per target and method on the same seeded folds (or train → test).

    Args:
        train: the measurements to fit on (select targets first with :meth:`LawTable.select`).
        cfg: law settings (``seed`` seeds the folds; ``combine`` names the default law row).
        test: evaluate on this table instead of folds of ``train``.
        folds: k of the k-fold split when there is no ``test``.
        methods: regressors beside the law (:data:`LIGHTGBM`, :data:`LINEAR`).

    Returns:
        ``{"protocol", "targets", "methods", "results": {target: {method: {"mae", "spearman"}}},
        "fit_seconds": {what: total seconds}, "law_combine": [per split]}``.

    Raises:
        DemixError: too few rows for the folds, or a test table that does not match.
    """
    n = len(train.R)
    if test is not None:
        Rt, Lt = _aligned(train, test)
        splits = [(np.arange(n), Rt, Lt)]
        protocol = f"fit on {train.source} ({n} rows), evaluate on {test.source} ({len(Rt)} rows)"
    else:
        if n < 2 * folds:
            raise DemixError(f"{train.source}: {n} rows, too few for {folds} folds")
        perm = np.random.default_rng(cfg.seed).permutation(n)
        tests = [perm[f::folds] for f in range(folds)]
        splits = [(np.setdiff1d(perm, te), train.R[te], train.L[te]) for te in tests]
        protocol = f"{folds} seeded folds (seed {cfg.seed}) of {train.source} ({n} rows)"
    scores: dict[str, list[list[tuple[float, float]]]] = {}
    seconds: dict[str, float] = {}
    combine = []
    for tr, Rt, Lt in splits:
        preds, secs, record = _split(train, tr, Rt, cfg, methods)
        for m, P in preds.items():
            scores.setdefault(m, []).append(_scores(P, Lt))
        for k, s in secs.items():
            seconds[k] = seconds.get(k, 0.0) + s
        combine.append(record)
    results = {
        t: {
            m: {
                "mae": float(np.nanmean([f[v][0] for f in per])),
                "spearman": float(np.nanmean([f[v][1] for f in per])),
            }
            for m, per in scores.items()
        }
        for v, t in enumerate(train.targets)
    }
    return {"protocol": protocol, "targets": list(train.targets), "methods": list(scores),
            "results": results, "fit_seconds": seconds, "law_combine": combine}  # fmt: skip
