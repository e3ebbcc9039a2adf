"""The law's forms r^p: one batched fit per exponent p, and the cross-validation that scores them (pure).

:mod:`.mixing` builds a :class:`~demix.law.mixing.MixingLaw` from these raw parameters; they are
kept apart so that the law's container and the machinery that fits it stay small enough to read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from demix.law.batch import fit_batched, predict
from demix.law.starts import scaled_starts, start_grid

if TYPE_CHECKING:
    from demix.config.law import LawConfig


def features(R: np.ndarray, p: float) -> np.ndarray:
    """r^p, what t multiplies: r itself for p = 1; else rounding-error negatives (-1e-18) read as 0."""
    return R if p == 1.0 else np.maximum(R, 0.0) ** p


def fit_at(
    R: np.ndarray,
    L: np.ndarray,
    mask: np.ndarray,
    cfg: LawConfig,
    diag: list[int | None],
    p: float,
    seed: int,
    *,
    n_starts: int | None = None,
    floor: int | None = None,
    budget: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Best parameters per domain at exponent p: theta (V, ·), training loss (V,), fit info.

    theta is (log c, t) for p = 1 (log k folded into t) and (log c, log k, t) otherwise.
    ``mask`` (n, V) weights the rows per domain (0: left out). ``n_starts`` caps the grid (a random
    subset, for the cross-validation's many small fits); where many mixtures make each start
    costly, :func:`scaled_starts` caps it further, not below ``floor`` (default ``law.min_starts``).
    """
    starts = start_grid(cfg, R.shape[1], diag, p, seed)
    grid = int(starts.shape[1])
    want = grid if n_starts is None else min(grid, n_starts)
    n_fit = int((mask > 0).sum(axis=0).max())
    floor = cfg.min_starts if floor is None else floor
    use = scaled_starts(want, floor, n_fit, R.shape[1], cfg.start_budget if budget is None else budget)
    if use < grid:
        pick = np.random.default_rng(seed).choice(grid, use, replace=False)
        starts = starts[:, np.sort(pick)]
    polish = min(cfg.polish, max(4, cfg.polish * use // want))  # fewer starts, fewer to polish
    X = features(R, p)
    Y, M = np.nan_to_num(L).T, mask.T
    kw: dict[str, Any] = {"delta": cfg.huber_delta, "mask": M, "ridge": cfg.ridge, "intercept": p != 1.0}
    first_iters = 0
    if polish and use > polish:
        # Every start in float32, then the best `polish` per domain again in float64.
        first = fit_batched(X, Y, starts, max_iter=cfg.screen_iter, single=True, keep_all=True, **kw)
        assert first.all_theta is not None and first.all_loss is not None
        top = np.argsort(first.all_loss, axis=1, kind="stable")[:, :polish]
        first_iters = first.iterations
        starts = np.take_along_axis(first.all_theta, top[..., None], axis=1)
    res = fit_batched(X, Y, starts, max_iter=cfg.max_iter, **kw)
    info = {
        "starts_per_domain": use,
        "start_grid": grid,
        "polished_in_float64": int(starts.shape[1]),
        "iterations": int(first_iters + res.iterations),
    }
    return res.theta, res.loss, info


def predict_theta(th: np.ndarray, R: np.ndarray, p: float) -> np.ndarray:
    """Losses (n, V) from raw parameters theta (V, ·) at exponent p (see :func:`_fit_at`)."""
    if p == 1.0:  # log k folded into t: b = 0
        th = np.insert(th, 1, 0.0, axis=1)
    return predict(th, features(R, p)).T


def choose_exponent(
    R: np.ndarray,
    L: np.ndarray,
    mask: np.ndarray,
    cfg: LawConfig,
    diag: list[int | None],
    aggregate: np.ndarray | None,
) -> tuple[float, dict[str, Any]]:
    """The exponent p of cfg.exponents whose law predicts left-out rows best; and the record.

    k-fold cross-validation on the given rows only (never on rows held out by a caller): each
    fold is fitted on the other rows with ``cfg.cv_starts`` starts per domain and scored by the
    mean absolute error of the overall loss on its rows (with ``aggregate``; else of the
    per-domain losses). Why p = 1/2 is offered: on the Data Mixing Laws paper's measurements a
    domain's loss rises steeply as its share goes to 0, which exp(t·r) under-predicts and
    exp(t·√r) (infinite slope at 0) follows; docs/perf/law.md.
    """
    ps = [float(p) for p in cfg.exponents]
    rows = np.flatnonzero(mask.sum(axis=1) > 0)
    folds = min(cfg.cv_folds, len(rows))
    n_params = R.shape[1] + 2
    if len(ps) == 1:
        return ps[0], {"exponent_choice": "given"}
    if len(rows) - -(-len(rows) // folds) < n_params + 1:
        return ps[0], {"exponent_choice": f"first listed: too few mixtures ({len(rows)}) to cross-validate"}
    perm = np.random.default_rng(cfg.seed).permutation(rows)
    tests = [perm[f::folds] for f in range(folds)]
    fit_masks = []
    for test in tests:
        m_fit = mask.copy()
        m_fit[test] = 0.0
        fit_masks.append(m_fit)
    usable = [f for f in range(folds) if ((fit_masks[f] > 0).sum(axis=0) >= 3).all()]
    if not usable:
        return ps[0], {"exponent_choice": "first listed: no fold leaves 3 mixtures per domain"}
    # All folds are fitted together: problem (fold, domain) is column f·V + i of one batched solve.
    V = L.shape[1]
    L_all = np.tile(L, (1, len(usable)))
    M_all = np.concatenate([fit_masks[f] for f in usable], axis=1)
    err = dict.fromkeys(ps, 0.0)
    count = 0.0
    fitted = {
        p: fit_at(
            R,
            L_all,
            M_all,
            cfg,
            diag * len(usable),
            p,
            cfg.seed + 1,
            n_starts=cfg.cv_starts,
            floor=max(1, cfg.min_starts // 8),
            budget=cfg.start_budget / folds,
        )[0]
        for p in ps
    }
    for j, f in enumerate(usable):
        test = tests[f]
        Lt, wt = L[test], mask[test].max(axis=1)
        # The overall loss needs every domain of a row; per-domain errors use what was measured.
        ok = np.isfinite(Lt).all(axis=1) if aggregate is not None else np.isfinite(Lt).any(axis=1)
        for p in ps:
            d = predict_theta(fitted[p][j * V : (j + 1) * V], R[test[ok]], p) - Lt[ok]
            e = np.abs(d @ aggregate) if aggregate is not None else np.nanmean(np.abs(d), axis=1)
            err[p] += float(wt[ok] @ e)
        count += float(wt[ok].sum())
    if count <= 0:
        return ps[0], {"exponent_choice": "first listed: no fold could be scored"}
    cv = {str(p): err[p] / count for p in ps}
    best = min(ps, key=lambda p: (err[p], ps.index(p)))
    return best, {"exponent_choice": f"{folds}-fold cross-validation", "exponent_cv_mae": cv}
