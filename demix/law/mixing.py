"""The data-mixing law L_i(r) = c_i + k_i·exp(Σ_j t_ij r_j^p) (Ye et al., ICLR 2025): fit and predict.

One law per validation domain i, fitted on data ratios r (rows sum to 1) with the paper's recipe:
parameters log c, log k, t; summed Huber loss; a multi-start grid of log c × log k × random t
(10 × 20 × 30 = 6000 starts by default); the start with the lowest training loss wins. All
domains and starts are solved together by :func:`demix.law.batch.fit_batched`.

p = 1 is the paper's law. demix also offers p = 1/2 and, by default, lets cross-validation on
the fitted rows choose (:func:`demix.law.forms.choose_exponent`): on the paper's own measurements the square
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
from demix.law.forms import choose_exponent, features, fit_at

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
        parts: for a combined law (``law.combine: ensemble``), its forms with their weights; the
            law predicts their weighted mean, and c, k, t, exponent are its heaviest form's (what
            the t_ij table and plot show). Empty for a single form.
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
    parts: tuple[tuple[float, MixingLaw], ...] = ()

    def predict(self, R: np.ndarray) -> np.ndarray:
        """Per-domain losses (n, V) at data ratios R (n, K) or (K,)."""
        R = np.atleast_2d(np.asarray(R, dtype=np.float64))
        if R.shape[1] != len(self.domains):
            raise DemixError(f"mixtures have {R.shape[1]} columns, the law has {len(self.domains)} domains")
        if self.parts:
            return sum((w * part.predict(R) for w, part in self.parts), np.zeros((len(R), len(self.targets))))
        z = self.features(R) @ self.t.T + np.log(self.k)[None, :]
        return self.c[None, :] + np.exp(np.minimum(z, 700.0))

    def features(self, R: np.ndarray) -> np.ndarray:
        """r^p, what t multiplies (r itself for the paper's law)."""
        return features(np.asarray(R, dtype=np.float64), self.exponent)

    @property
    def forms(self) -> tuple[tuple[float, MixingLaw], ...]:
        """(weight, single-form law) pairs: the parts of a combined law, or the law itself."""
        return self.parts or ((1.0, self),)

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
        doc = self._form_json()
        doc["combine"] = {
            "method": self.info.get("combine", "select"),
            "weights": self.info.get("combine_weights", {str(self.exponent): 1.0}),
        }
        if "combine_power" in self.info:
            doc["combine"]["power"] = self.info["combine_power"]
        if self.parts:
            doc["parts"] = [{"weight": w, **part._form_json()} for w, part in self.parts]
        return doc

    def _form_json(self) -> dict[str, Any]:
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
        if self.parts:
            terms = " + ".join(f"{w:.2f}*[{part.formula()[9:]}]" for w, part in self.parts)
            return f"L_i(r) = {terms}"
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
                tuple(
                    (float(d["weight"]), cls.from_json(d | {"aggregate": None}))
                    for d in doc.get("parts") or []
                ),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DemixError(f"not a mixing-law fit ({type(e).__name__}: {e})") from None


def exponent_note(exponent: float, info: dict[str, Any]) -> str | None:
    """How the form was chosen or the forms combined, with the cross-validation errors; None when
    p was given, not chosen."""
    cv = info.get("exponent_cv_mae")
    if not isinstance(cv, dict) or not cv:
        return None
    errs = ", ".join(f"p={p}: {float(e):.4f}" for p, e in cv.items())
    w = info.get("combine_weights")
    if info.get("combine") == "ensemble" and isinstance(w, dict):
        mix = " + ".join(f"{float(x):.2f} x (p={q})" for q, x in w.items())
        power = float(info.get("combine_power", 1.0))
        return (
            f"ensemble of the forms, {mix}, weights ∝ ({info.get('exponent_choice')} MAE)^-{power:g} "
            f"(held-out MAE {errs}); t_ij shown for p={exponent:g}"
        )
    return f"p={exponent:g} chosen by {info.get('exponent_choice')} (held-out MAE {errs})"


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

    With several ``cfg.exponents`` each form r^p is scored first by cross-validation on these rows
    (:func:`demix.law.forms.choose_exponent`). ``law.combine: select`` then fits the best form on
    all rows; ``ensemble`` (the default) fits every form and predicts their mean weighted by
    (cross-validated MAE)^-``law.combine_power`` (:func:`combine_weights`). ``info["combine"]``
    and ``info["combine_weights"]`` record which.

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
        weights_by_p = combine_weights(cfg, cv)
        forms = {q: _form(R, L, mask, cfg, diag, q, names, tnames) for q in (weights_by_p or {p: 1.0})}
    info = dict(forms[p].info) | cv
    info |= {"mixtures": int(n), "seed": cfg.seed, "ridge": cfg.ridge, "huber_delta": cfg.huber_delta}
    info["combine"] = "ensemble" if weights_by_p else "select"
    info["combine_weights"] = {str(q): w for q, w in (weights_by_p or {p: 1.0}).items()}
    law = replace(forms[p], info=info)
    if weights_by_p:
        info["combine_power"] = float(cfg.combine_power)
        parts = tuple((w, forms[q]) for q, w in weights_by_p.items())
        law = replace(forms[max(weights_by_p, key=lambda q: weights_by_p[q])], info=info, parts=parts)
    return law.with_aggregate(agg) if agg is not None else law


def combine_weights(cfg: LawConfig, cv: dict[str, Any]) -> dict[float, float] | None:
    """Weights of the forms in an ensemble, ∝ (cross-validated MAE)^-combine_power; None: select one.

    Why combine at all: within one model size cross-validation prefers √r every time, yet which
    form ranks the mixtures of a larger model best differs between data sets (docs/perf/law.md);
    a weighted mean of the forms' predictions is never far from the better of them.
    """
    errs = cv.get("exponent_cv_mae")
    if cfg.combine != "ensemble" or not isinstance(errs, dict) or len(errs) < 2:
        return None
    e = np.array([max(float(v), 1e-12) for v in errs.values()])
    w = e ** -float(cfg.combine_power)
    return {float(q): float(x) for q, x in zip(errs, w / w.sum(), strict=True)}


def _form(
    R: np.ndarray,
    L: np.ndarray,
    mask: np.ndarray,
    cfg: LawConfig,
    diag: list[int | None],
    p: float,
    names: list[str],
    tnames: list[str],
) -> MixingLaw:
    """The law of one form r^p fitted on all rows, in the reported gauge (module docstring)."""
    th, loss, info = fit_at(R, L, mask, cfg, diag, p, cfg.seed)
    if p == 1.0:  # log k was folded into t: report t centred, k = exp(mean t)
        m = th[:, 1:].mean(axis=1)
        c, k, t = np.exp(th[:, 0]), np.exp(m), th[:, 1:] - m[:, None]
    else:
        c, k, t = np.exp(th[:, 0]), np.exp(th[:, 1]), th[:, 2:]
    return MixingLaw(names, tnames, c, k, t, loss, None, info, p)


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
