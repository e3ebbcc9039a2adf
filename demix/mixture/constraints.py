"""Constraints on the mixture, turned into linear bounds on merge weights w, and a repair map.

Users state constraints on data ratios r (``search.constraints.on: ratios``, the default) because
r is what a data team trains on; since r = beta*e_G + (1-beta)*w is affine, each bound on r is a
bound on w. The epoch cap (at most ``export.max_epochs`` passes over a domain's tokens in a run of
``export.target_tokens``) is always a bound on r. A sampled w is repaired onto the feasible set by
Euclidean projection (Dykstra's algorithm over the box-simplex and each group slab), which is the
identity on feasible points, so feasible baselines and candidates pass through unchanged. Weights
below ``search.min_weight`` are then dropped (set to 0) where the bounds allow it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from demix.config.search import ConstraintsConfig

if TYPE_CHECKING:
    from demix.config import ExperimentConfig
from demix.errors import ConfigError

TOL = 1e-9


@dataclass(frozen=True)
class GroupBound:
    """lo <= sum(w[mask]) <= hi."""

    label: str
    mask: np.ndarray  # (K,) bool
    lo: float
    hi: float


@dataclass(frozen=True)
class Constraints:
    """Linear bounds on merge weights w (canonical domain order) plus the drop threshold."""

    domains: tuple[str, ...]
    lo: np.ndarray  # (K,)
    hi: np.ndarray  # (K,)
    groups: tuple[GroupBound, ...] = ()
    min_weight: float = 0.0
    notes: tuple[str, ...] = field(default=())  # where each bound came from, for error messages

    @classmethod
    def none(cls, domains: Sequence[str], min_weight: float = 0.0) -> Constraints:
        k = len(domains)
        return cls(tuple(domains), np.zeros(k), np.ones(k), (), min_weight)

    @property
    def trivial(self) -> bool:
        return bool(np.all(self.lo <= 0) and np.all(self.hi >= 1) and not self.groups)

    def violation(self, w: np.ndarray) -> np.ndarray:
        """Largest bound violation per row of w (..., K); 0 for a feasible mixture."""
        w = np.atleast_2d(np.asarray(w, dtype=np.float64))
        v = np.maximum(np.max(self.lo - w, axis=1), np.max(w - self.hi, axis=1))
        v = np.maximum(v, np.abs(w.sum(axis=1) - 1.0))
        for g in self.groups:
            s = w[:, g.mask].sum(axis=1)
            v = np.maximum(v, np.maximum(g.lo - s, s - g.hi))
        return np.maximum(v, 0.0)

    def feasible(self, w: np.ndarray, tol: float = 1e-7) -> np.ndarray:
        return self.violation(w) <= tol

    def repair(self, w: np.ndarray) -> np.ndarray:
        """Project w (K,) or (N, K) onto the feasible set, then drop weights below min_weight."""
        w = np.asarray(w, dtype=np.float64)
        single = w.ndim == 1
        W = np.atleast_2d(w)
        lo = np.broadcast_to(self.lo, W.shape)
        hi = np.broadcast_to(self.hi, W.shape)
        out = W if self.trivial and np.all(self.violation(W) <= TOL) else self._project(W, lo, hi)
        if self.min_weight > 0:
            out = self._drop(out, lo, hi)
        return out[0] if single else out

    def _project(self, W: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        if not self.groups:
            return _project_box_simplex(W, lo, hi)
        # Dykstra: the Euclidean projection onto the intersection of convex sets.
        x = W.copy()
        corr = [np.zeros_like(W) for _ in range(len(self.groups) + 1)]
        for _ in range(1000):
            y = _project_box_simplex(x + corr[0], lo, hi)
            corr[0] = x + corr[0] - y
            x = y
            for i, g in enumerate(self.groups, start=1):
                y = _project_slab(x + corr[i], g)
                corr[i] = x + corr[i] - y
                x = y
            if np.all(self.violation(x) <= TOL):
                break
        return x

    def _drop(self, W: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        hi = hi.copy()
        out = W
        for _ in range(W.shape[1]):
            small = (out > 0) & (out < self.min_weight) & (lo <= 0)
            if not small.any():
                break
            hi2 = np.where(small, 0.0, hi)
            cand = self._project(np.where(small, 0.0, out), lo, hi2)
            ok = self.violation(cand) <= 1e-7
            out = np.where(ok[:, None], cand, out)
            hi = np.where(ok[:, None], hi2, hi)
            if not ok.any():
                break
        out = np.where((out > 0) & (out < 1e-12), 0.0, out)
        return out / out.sum(axis=1, keepdims=True)


def _project_box_simplex(W: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """argmin ||x - w|| s.t. lo <= x <= hi, sum x = 1: x = clip(w - tau, lo, hi), tau by bisection."""
    a = np.min(W - hi, axis=1) - 1.0
    b = np.max(W - lo, axis=1) + 1.0
    for _ in range(100):
        tau = 0.5 * (a + b)
        s = np.clip(W - tau[:, None], lo, hi).sum(axis=1)
        a = np.where(s > 1.0, tau, a)
        b = np.where(s > 1.0, b, tau)
    return np.clip(W - (0.5 * (a + b))[:, None], lo, hi)


def _project_slab(W: np.ndarray, g: GroupBound) -> np.ndarray:
    s = W[:, g.mask].sum(axis=1)
    n = int(g.mask.sum())
    shift = np.where(s > g.hi, (s - g.hi) / n, np.where(s < g.lo, (s - g.lo) / n, 0.0))
    return W - shift[:, None] * g.mask[None, :]


def build_constraints(
    cc: ConstraintsConfig,
    domains: Sequence[str],
    *,
    general: str,
    beta: float,
    min_weight: float = 0.0,
    token_counts: np.ndarray | None = None,
    target_tokens: float | None = None,
    max_epochs: float | None = None,
) -> Constraints:
    """Turn ``search.constraints`` (and the epoch cap) into bounds on w, and check that some mixture
    satisfies them.

    Raises:
        ConfigError: naming the constraints that no mixture satisfies.
    """
    names = list(domains)
    k = len(names)
    g = names.index(general)
    e_g = np.zeros(k)
    e_g[g] = 1.0
    lo_r, hi_r = np.zeros(k), np.ones(k)
    notes: list[str] = []
    for key, vals in (("min", cc.min), ("max", cc.max), ("fixed", cc.fixed)):
        for name, v in vals.items():
            i = names.index(name)
            if key in ("min", "fixed"):
                lo_r[i] = max(lo_r[i], v)
            if key in ("max", "fixed"):
                hi_r[i] = min(hi_r[i], v)
            notes.append(f"search.constraints.{key}.{name}={v}")
    on_ratios = cc.on == "ratios"
    # Bounds on r become bounds on w through w = (r - beta*e_G) / (1 - beta).
    if on_ratios:
        lo, hi = (lo_r - beta * e_g) / (1 - beta), (hi_r - beta * e_g) / (1 - beta)
    else:
        lo, hi = lo_r.copy(), hi_r.copy()
    if cc.cap_epochs and token_counts is not None and target_tokens and max_epochs:
        cap_r = max_epochs * np.asarray(token_counts, dtype=np.float64) / float(target_tokens)
        cap_w = (cap_r - beta * e_g) / (1 - beta)
        notes += [
            f"epoch cap {names[c]}: r <= {cap_r[c]:.4g} ({max_epochs:g} epochs)"
            for c in np.flatnonzero(cap_w < hi)
        ]
        hi = np.minimum(hi, cap_w)
    groups = []
    for j, gc in enumerate(cc.groups):
        mask = np.array([n in gc.domains for n in names])
        has_g = float(mask[g]) if on_ratios else 0.0
        b = beta if on_ratios else 0.0
        glo, ghi = (gc.min - b * has_g) / (1 - b), (gc.max - b * has_g) / (1 - b)
        groups.append(GroupBound(f"search.constraints.groups[{j}]", mask, glo, ghi))
        notes.append(f"search.constraints.groups[{j}] ({'+'.join(gc.domains)} in [{gc.min}, {gc.max}])")
    c = Constraints(
        tuple(names), np.clip(lo, 0.0, 1.0), np.minimum(hi, 1.0), tuple(groups), min_weight, tuple(notes)
    )
    _check_feasible(c, lo, hi, names, beta, general, on_ratios)
    return c


def _check_feasible(
    c: Constraints, lo: np.ndarray, hi: np.ndarray, names: list[str], beta: float, general: str, on_r: bool
) -> None:
    why = "; ".join(c.notes) or "(no constraints)"
    for i in np.flatnonzero(hi < -TOL):
        extra = f" (proxies always hold beta={beta} {general} data)" if on_r and names[i] == general else ""
        raise ConfigError(f"search.constraints: no mixture can satisfy the bound on {names[i]}{extra}: {why}")
    for i in np.flatnonzero(c.lo > c.hi + TOL):
        raise ConfigError(f"search.constraints: min > max for {names[i]} once combined: {why}")
    if not c.groups:  # a box meets the simplex iff sum(lo) <= 1 <= sum(hi)
        if c.lo.sum() > 1 + TOL or c.hi.sum() < 1 - TOL:
            raise ConfigError(f"search.constraints: no mixture satisfies all of: {why}")
        return
    from scipy.optimize import linprog

    k = len(names)
    a_ub, b_ub = [], []
    for gb in c.groups:
        a_ub += [gb.mask.astype(float), -gb.mask.astype(float)]
        b_ub += [gb.hi, -gb.lo]
    res = linprog(
        np.zeros(k),
        A_ub=np.array(a_ub) if a_ub else None,
        b_ub=np.array(b_ub) if b_ub else None,
        A_eq=np.ones((1, k)),
        b_eq=[1.0],
        bounds=list(zip(c.lo, c.hi, strict=True)),
        method="highs",
    )
    if res.status != 0:
        raise ConfigError(f"search.constraints: no mixture satisfies all of: {why}")


def constraints_for(
    cfg: ExperimentConfig, domains: Sequence[str], token_counts: np.ndarray | None
) -> Constraints:
    """The search's constraints on merge weights for this experiment (shared by search and export)."""
    s = cfg.search
    return build_constraints(
        s.constraints,
        domains,
        general=cfg.general,
        beta=cfg.train.beta,
        min_weight=s.min_weight,
        token_counts=token_counts,
        target_tokens=cfg.export.target_tokens,
        max_epochs=cfg.export.max_epochs,
    )
