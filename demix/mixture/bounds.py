"""The search's constraints stated on data ratios r: box, group and simplex bounds (pure numpy).

:mod:`.constraints` states them on merge weights w, which is what the search samples; the law
describes data mixtures, so its optimiser needs the same constraints on r = β·e_G + (1-β)·w.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from demix.errors import ConfigError

if TYPE_CHECKING:
    from demix.config import ExperimentConfig


@dataclass(frozen=True)
class RatioBounds:
    """Linear constraints on data ratios r: lo <= r <= hi, glo <= G r <= ghi, Σ r = 1."""

    lo: np.ndarray  # (K,)
    hi: np.ndarray  # (K,)
    groups: np.ndarray  # (J, K) 0/1 membership
    glo: np.ndarray  # (J,)
    ghi: np.ndarray  # (J,)
    min_weight: float = 0.0

    @classmethod
    def simplex(cls, K: int, min_weight: float = 0.0) -> RatioBounds:
        return cls(np.zeros(K), np.ones(K), np.zeros((0, K)), np.zeros(0), np.zeros(0), min_weight)

    def violation(self, r: np.ndarray) -> float:
        """Largest bound violation of one mixture r (K,); 0 when it is feasible."""
        return float(self.violations(np.asarray(r, dtype=np.float64)[None])[0])

    def violations(self, R: np.ndarray) -> np.ndarray:
        """Largest bound violation of each row of R (n, K), at once (pools of candidates)."""
        R = np.asarray(R, dtype=np.float64)
        v = np.maximum(np.max(self.lo - R, axis=1), np.max(R - self.hi, axis=1))
        v = np.maximum(v, np.abs(R.sum(axis=1) - 1.0))
        if len(self.groups):
            S = R @ self.groups.T
            v = np.maximum(v, np.maximum(np.max(self.glo - S, axis=1), np.max(S - self.ghi, axis=1)))
        return np.maximum(v, 0.0)


def bounds_for(
    cfg: ExperimentConfig, domains: Sequence[str], token_counts: np.ndarray | None = None
) -> RatioBounds:
    """``search.constraints`` (and the epoch cap when token counts are known) as bounds on r.

    Constraints stated on merge weights (``on: weights``) are mapped to ratios through
    r = β·e_G + (1-β)·w; constraints on ratios are used as they are: the law describes data
    mixtures, so its optimum may hold less general data than β (export says so).

    Raises:
        ConfigError: a constraint names a domain the law does not know, or nothing is feasible.
    """
    # Imported here: .constraints loads the config schema, which `import demix.law` does not need.
    from demix.mixture.constraints import build_constraints

    names = list(domains)
    cc = cfg.search.constraints
    unknown = sorted(cc.domains() - set(names))
    if unknown:
        raise ConfigError(
            f"search.constraints name {unknown[0]!r}, which is not a domain of the law: {names}"
        )
    on_w = cc.on == "weights"
    general = cfg.general if cfg.general in names else names[0]
    beta = cfg.train.beta if on_w and cfg.general in names else 0.0
    c = build_constraints(
        cc,
        names,
        general=general,
        beta=beta,
        token_counts=token_counts,
        target_tokens=float(cfg.export.target_tokens),
        max_epochs=cfg.export.max_epochs,
    )
    e_g = np.array([float(n == general) for n in names])
    lo, hi = beta * e_g + (1 - beta) * c.lo, beta * e_g + (1 - beta) * c.hi
    G = np.array([g.mask.astype(np.float64) for g in c.groups]).reshape(-1, len(names))
    has_g = G @ e_g
    glo = np.array([g.lo for g in c.groups]) * (1 - beta) + beta * has_g
    ghi = np.array([g.hi for g in c.groups]) * (1 - beta) + beta * has_g
    return RatioBounds(lo, hi, G, glo, ghi, cfg.search.min_weight)
