"""The data-mixing law L_i(r) = c_i + k_i·exp(Σ_j t_ij r_j^p) (Ye et al., ICLR 2025): fit and predict.

One law per validation domain i, fitted on data ratios r (rows sum to 1) with the paper's recipe:
parameters log c, log k, t; summed Huber loss; a multi-start grid of log c × log k × random t
(10 × 20 × 30 = 6000 starts by default); the start with the lowest training loss wins. All
domains and starts are solved together by :func:`demix.law.batch.fit_batched`.

p = 1 is the paper's law. demix also offers p = 1/2 and, by default, lets cross-validation on
the fitted rows choose (:func:`choose_exponent`): on the paper's own measurements the square
root halves the error on held-out mixtures, because a loss climbs steeply as a domain's share
goes to 0 (docs/perf/law.md). ``law.exponents: [1.0]`` fixes the paper's law.

For p = 1, Σ_j r_j = 1 makes k_i and a constant shift of row t_i interchangeable. Reported t is
then in the gauge where each row has mean 0 (k absorbs the shift): t_ij < 0 means a larger share
of j lowers the loss on i relative to an average domain; t_ij - t_il compares two domains
exactly. For p < 1 there is no such freedom and t is reported as fitted: t_ij < 0 means more of
j lowers the loss on i.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import DemixError
from demix.law.batch import fit_batched, predict
from demix.law.starts import scaled_starts, start_grid

if TYPE_CHECKING:
    from collections.abc import Iterator

    from demix.config.law import LawConfig


@dataclass
class MixingLaw:
    """A fitted law for V validation domains over K training domains.

    Attributes:
        domains: the K training domains (columns of r), canonical order.
        targets: the V validation domains (rows of t).
        c: (V,) the irreducible part of each domain's loss.
        k: (V,) scale of the mixture-dependent part.
        t: (V, K) interaction matrix, rows centred (see module docstring).
        train_loss: (V,) summed Huber loss of the chosen start.
        aggregate: (V,) weights of the overall loss, or ``None`` when unknown.
        info: how it was fitted (starts, delta, points, iterations, the exponent's choice).
        exponent: p in exp(Σ_j t_ij r_j^p); 1 is the paper's law.
    """

    domains: list[str]
    targets: list[str]
    c: np.ndarray
    k: np.ndarray
    t: np.ndarray
    train_loss: np.ndarray
    aggregate: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    exponent: float = 1.0

    def predict(self, R: np.ndarray) -> np.ndarray:
        """Per-domain losses (n, V) at data ratios R (n, K) or (K,)."""
        R = np.atleast_2d(np.asarray(R, dtype=np.float64))
        if R.shape[1] != len(self.domains):
            raise DemixError(f"mixtures have {R.shape[1]} columns, the law has {len(self.domains)} domains")
        z = self.features(R) @ self.t.T + np.log(self.k)[None, :]
        return self.c[None, :] + np.exp(np.minimum(z, 700.0))

    def features(self, R: np.ndarray) -> np.ndarray:
        """r^p, what t multiplies (r itself for the paper's law)."""
        return _features(np.asarray(R, dtype=np.float64), self.exponent)

    def predict_aggregate(self, R: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Overall loss (n,) = Σ_i s_i L_i(r) with s the given or stored aggregation weights."""
        s = self.aggregate if weights is None else np.asarray(weights, dtype=np.float64)
        if s is None:
            raise DemixError("the law has no aggregation weights; give law.aggregate_weights")
        return self.predict(R) @ s

    def with_aggregate(self, weights: np.ndarray | None) -> MixingLaw:
        """The same law with other aggregation weights (normalised to sum 1)."""
        s = (
            None
            if weights is None
            else _normalised(np.asarray(weights, dtype=np.float64), "aggregate weights")
        )
        return replace(self, aggregate=s, info=dict(self.info))

    def to_json(self) -> dict[str, Any]:
        return {
            "law": self.formula(),
            "exponent": self.exponent,
            "domains": list(self.domains),
            "targets": list(self.targets),
            "c": self.c.tolist(),
            "k": self.k.tolist(),
            "t": self.t.tolist(),
            "train_loss": self.train_loss.tolist(),
            "aggregate": None if self.aggregate is None else self.aggregate.tolist(),
            "info": self.info,
        }

    def formula(self) -> str:
        r = "r_j" if self.exponent == 1.0 else f"r_j^{self.exponent:g}"
        return f"L_i(r) = c_i + k_i * exp(sum_j t_ij {r})"

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MixingLaw:
        try:
            agg = doc.get("aggregate")
            return cls(
                list(doc["domains"]),
                list(doc["targets"]),
                np.asarray(doc["c"], dtype=np.float64),
                np.asarray(doc["k"], dtype=np.float64),
                np.asarray(doc["t"], dtype=np.float64).reshape(len(doc["targets"]), len(doc["domains"])),
                np.asarray(doc.get("train_loss", [np.nan] * len(doc["targets"])), dtype=np.float64),
                None if agg is None else np.asarray(agg, dtype=np.float64),
                dict(doc.get("info") or {}),
                _exponent(doc.get("exponent", 1.0)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DemixError(f"not a mixing-law fit ({type(e).__name__}: {e})") from None


def exponent_note(exponent: float, info: dict[str, Any]) -> str | None:
    """How p was chosen, with the cross-validation errors; None when it was given, not chosen."""
    cv = info.get("exponent_cv_mae")
    if not isinstance(cv, dict) or not cv:
        return None
    errs = ", ".join(f"p={p}: {float(e):.4f}" for p, e in cv.items())
    return f"p={exponent:g} chosen by {info.get('exponent_choice')} (held-out MAE {errs})"


def _features(R: np.ndarray, p: float) -> np.ndarray:
    """r^p, what t multiplies: r itself for p = 1; else rounding-error negatives (-1e-18) read as 0."""
    return R if p == 1.0 else np.maximum(R, 0.0) ** p


def _exponent(p: Any) -> float:
    p = float(p)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"exponent {p} is not in (0, 1]")
    return p


def _normalised(s: np.ndarray, what: str) -> np.ndarray:
    if np.any(~np.isfinite(s)) or np.any(s < 0) or s.sum() <= 0:
        raise DemixError(f"{what} must be non-negative with a positive sum, got {s.tolist()}")
    return s / s.sum()


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with n torch CPU threads (None: leave as is); small batched solves are fastest on one."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def fit(
    R: np.ndarray,
    L: np.ndarray,
    cfg: LawConfig,
    *,
    domains: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    aggregate: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> MixingLaw:
    """Fit one law per validation domain, all domains and starts in one batched solve.

    With several ``cfg.exponents`` the exponent p of r^p is chosen first by cross-validation on
    these rows (:func:`choose_exponent`), then the law is fitted with it on all of them.

    Args:
        R: (n, K) data ratios of the n measured mixtures; rows must sum to 1.
        L: (n, V) measured losses per validation domain (NaN: not measured, skipped).
        cfg: ``law`` settings (Huber delta, start grid, iterations, exponents, seed, threads).
        domains: names of the K training domains (default d0, d1, ...).
        targets: names of the V validation domains (default: ``domains`` when V == K).
        aggregate: (V,) weights of the overall loss, stored with the law; the cross-validation
            scores the overall loss with them (without them, the mean per-domain error).
        weights: (n,) weights of the mixtures in the loss (counts for a bootstrap; default 1).
            Rows repeated by a bootstrap would leak across folds, so pass a single exponent then.

    Returns:
        The fitted :class:`MixingLaw`.

    Raises:
        DemixError: shapes disagree, ratios don't sum to 1, or a domain has too few points.
    """
    R = np.atleast_2d(np.asarray(R, dtype=np.float64))
    L = np.asarray(L, dtype=np.float64)
    L = L[:, None] if L.ndim == 1 else L
    n, K = R.shape
    V = L.shape[1]
    if L.shape[0] != n:
        raise DemixError(f"{n} mixtures but {L.shape[0]} rows of losses")
    bad = np.flatnonzero(np.abs(R.sum(axis=1) - 1.0) > 1e-3)
    if bad.size:
        raise DemixError(f"mixture row {int(bad[0])} sums to {R[bad[0]].sum():.6g}, not 1")
    names = list(domains) if domains is not None else [f"d{j}" for j in range(K)]
    tnames = list(targets) if targets is not None else (names if V == K else [f"v{i}" for i in range(V)])
    mask = np.isfinite(L).astype(np.float64)
    if weights is not None:
        mask = mask * np.asarray(weights, dtype=np.float64)[:, None]
    few = np.flatnonzero((mask > 0).sum(axis=0) < 3)
    if few.size:
        raise DemixError(f"validation domain {tnames[few[0]]!r} has fewer than 3 measured mixtures")
    diag = [names.index(tn) if tn in names else None for tn in tnames]
    agg = (
        None
        if aggregate is None
        else _normalised(np.asarray(aggregate, dtype=np.float64), "aggregate weights")
    )
    with torch_threads(cfg.threads):
        p, cv = choose_exponent(R, L, mask, cfg, diag, agg)
        th, loss, info = _fit_at(R, L, mask, cfg, diag, p, cfg.seed)
    if p == 1.0:  # log k was folded into t: report t centred, k = exp(mean t)
        m = th[:, 1:].mean(axis=1)
        c, k, t = np.exp(th[:, 0]), np.exp(m), th[:, 1:] - m[:, None]
    else:
        c, k, t = np.exp(th[:, 0]), np.exp(th[:, 1]), th[:, 2:]
    info.update({"mixtures": int(n), "seed": cfg.seed, "ridge": cfg.ridge, "huber_delta": cfg.huber_delta})
    info.update(cv)
    law = MixingLaw(names, tnames, c, k, t, loss, None, info, p)
    return law.with_aggregate(agg) if agg is not None else law


def _fit_at(
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
    X = _features(R, p)
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


def _predict_theta(th: np.ndarray, R: np.ndarray, p: float) -> np.ndarray:
    """Losses (n, V) from raw parameters theta (V, ·) at exponent p (see :func:`_fit_at`)."""
    if p == 1.0:  # log k folded into t: b = 0
        th = np.insert(th, 1, 0.0, axis=1)
    return predict(th, _features(R, p)).T


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
        p: _fit_at(
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
            d = _predict_theta(fitted[p][j * V : (j + 1) * V], R[test[ok]], p) - Lt[ok]
            e = np.abs(d @ aggregate) if aggregate is not None else np.nanmean(np.abs(d), axis=1)
            err[p] += float(wt[ok] @ e)
        count += float(wt[ok].sum())
    if count <= 0:
        return ps[0], {"exponent_choice": "first listed: no fold could be scored"}
    cv = {str(p): err[p] / count for p in ps}
    best = min(ps, key=lambda p: (err[p], ps.index(p)))
    return best, {"exponent_choice": f"{folds}-fold cross-validation", "exponent_cv_mae": cv}


def learn_aggregate_weights(L: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Implicit aggregation: the validation mix s >= 0, Σ s = 1 that best explains an overall loss.

    When only the overall validation loss y (n,) is known for a validation set of unknown
    composition, but per-domain losses L (n, V) were measured, s solves min |L s - y|² on the
    simplex (non-negative least squares with the sum constraint as a heavily weighted row).
    """
    from scipy.optimize import nnls

    L = np.asarray(L, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(L).all(axis=1) & np.isfinite(y)
    scale = 1e3 * max(1.0, float(np.abs(L[ok]).max()))
    A = np.vstack([L[ok], scale * np.ones((1, L.shape[1]))])
    b = np.concatenate([y[ok], [scale]])
    s, _ = nnls(A, b)
    return _normalised(s, "learned aggregate weights")
