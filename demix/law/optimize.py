"""The law-optimal mixture under the same constraints as the search.

For the paper's law the overall predicted loss Σ_i s_i (c_i + k_i·exp(t_i·r)) is convex in r (a
non-negative sum of exponentials of linear functions), and the constraints (per-domain
min/max/fixed, group caps, epoch caps, the simplex) are linear, so SLSQP converges to the global
optimum; a few feasible starts guard against numerical trouble at the boundary. With r^p (p < 1)
the problem is solved in u = r^p and is no longer convex: the multi-start matters there. Shares
below ``search.min_weight`` are then dropped and the rest re-optimised, as the search does. The
bounds on r (:class:`~demix.mixture.bounds.RatioBounds`) come from :mod:`demix.mixture.bounds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from demix.errors import DemixError
from demix.law.mixing import MixingLaw
from demix.mixture.bounds import RatioBounds, bounds_for

if TYPE_CHECKING:
    from demix.config import ExperimentConfig


@dataclass(frozen=True)
class Optimum:
    """The law-optimal mixture and what the law predicts there."""

    r: np.ndarray  # (K,)
    loss: float  # predicted overall loss
    per_domain: np.ndarray  # (V,) predicted per-domain losses


def _solve(law: MixingLaw, s: np.ndarray, b: RatioBounds, r0: np.ndarray) -> np.ndarray:
    """SLSQP from r0, in u = r^p0 (p0: the smallest p of the law's forms), where every form is
    exp(t·u^(p/p0)) with a finite gradient.

    In r, the gradient of r^p is infinite at a zero share; in u the constraints become smooth
    (Σ u^(1/p0) = 1, G u^(1/p0) within the caps) and the bounds stay bounds (lo^p0 <= u <= hi^p0).
    A combined law (``law.parts``) is the weighted sum of its forms' objectives.
    """
    from scipy.optimize import minimize

    p0 = min(part.exponent for _, part in law.forms)
    q = 1.0 / p0
    forms = [(w, part.t, np.log(part.k), part.c, part.exponent / p0) for w, part in law.forms]

    def f(u: np.ndarray) -> tuple[float, np.ndarray]:
        u = np.maximum(u, 0.0)
        val, grad = 0.0, np.zeros_like(u)
        for w, t, logk, c, a in forms:
            e = w * s * np.exp(np.minimum(t @ u**a + logk, 700.0))  # (V,)
            val += float(w * (s @ c) + e.sum())
            grad += (e @ t) * (a * u ** (a - 1.0) if a != 1.0 else 1.0)
        return val, grad

    def ratios(u: np.ndarray) -> np.ndarray:
        return np.maximum(u, 0.0) ** q

    def dratios(u: np.ndarray) -> np.ndarray:  # d r_j / d u_j, finite since q >= 1
        return q * np.maximum(u, 0.0) ** (q - 1.0)

    cons = [
        {
            "type": "eq",
            "fun": lambda u: np.array([ratios(u).sum() - 1.0]),
            "jac": lambda u: dratios(u)[None, :],
        }
    ]
    if len(b.groups):
        G = b.groups
        cons.append(
            {"type": "ineq", "fun": lambda u: b.ghi - G @ ratios(u), "jac": lambda u: -G * dratios(u)}
        )
        cons.append({"type": "ineq", "fun": lambda u: G @ ratios(u) - b.glo, "jac": lambda u: G * dratios(u)})
    res = minimize(
        f,
        r0**p0,
        jac=True,
        method="SLSQP",
        bounds=list(zip(b.lo**p0, b.hi**p0, strict=True)),
        constraints=cons,
        options={"maxiter": 500, "ftol": 1e-12},
    )
    return np.clip(ratios(np.asarray(res.x, dtype=np.float64)), b.lo, b.hi)


def optimize(
    law: MixingLaw,
    bounds: RatioBounds | None = None,
    *,
    weights: np.ndarray | None = None,
    starts: int = 16,
    seed: int = 0,
) -> Optimum:
    """Minimise the law's overall loss over the feasible mixtures.

    Args:
        law: a fitted law.
        bounds: constraints on r (default: the plain simplex).
        weights: (V,) aggregation weights (default: the law's own).
        starts: SLSQP starts (feasible points drawn uniformly and projected).

    Raises:
        DemixError: no aggregation weights are known, or no start reaches a feasible mixture.
    """
    K = len(law.domains)
    s = law.aggregate if weights is None else np.asarray(weights, dtype=np.float64)
    if s is None:
        raise DemixError("the law has no aggregation weights; give law.aggregate_weights")
    b = bounds if bounds is not None else RatioBounds.simplex(K)
    rng = np.random.default_rng(seed)
    best: np.ndarray | None = None
    best_f = np.inf
    for r0 in rng.dirichlet(np.ones(K), size=starts):
        r = _solve(law, s, b, np.clip(r0, b.lo, b.hi))
        fr = float(law.predict_aggregate(r, s)[0])
        if b.violation(r) <= 1e-6 and fr < best_f:
            best, best_f = r, fr
    if best is None:
        raise DemixError("the law optimisation found no mixture that satisfies the constraints")
    if b.min_weight > 0:
        small = (best > 0) & (best < b.min_weight) & (b.lo <= 0)
        if small.any():
            b2 = RatioBounds(b.lo, np.where(small, 0.0, b.hi), b.groups, b.glo, b.ghi, 0.0)
            r2 = _solve(law, s, b2, np.where(small, 0.0, best) / np.where(small, 0.0, best).sum())
            if b2.violation(r2) <= 1e-6:
                best = r2
    best = np.where(best < 1e-9, 0.0, best)
    best = best / best.sum()
    return Optimum(best, float(law.predict_aggregate(best, s)[0]), law.predict(best)[0])


def optimize_for(
    cfg: ExperimentConfig,
    law: MixingLaw,
    domains: Sequence[str] | None = None,
    *,
    token_counts: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """The law optimum r (K,) under the experiment's search constraints.

    ``domains`` names the law's K columns (a law fitted without names has d0, d1, ...).
    """
    names = list(domains) if domains is not None else law.domains
    if len(names) != len(law.domains):
        raise DemixError(f"{len(names)} domains {names} for a law over {len(law.domains)}: {law.domains}")
    if weights is None and law.aggregate is None:
        weights = np.full(len(law.targets), 1.0 / len(law.targets))
    b = bounds_for(cfg, names, token_counts)
    return optimize(law, b, weights=weights, starts=cfg.law.optimize_starts, seed=cfg.law.seed).r
