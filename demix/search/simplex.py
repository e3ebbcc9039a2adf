"""Simplex parameterisations: Optuna's raw draws ``u_<domain>`` in (0, 1] <-> merge weights w.

Optuna has no Dirichlet distribution, so each trial draws one uniform ``u_i`` per domain and maps it
through the inverse CDF of a Gamma(alpha_i) variable (u_i = 0 gives x_i = 0: the domain is
dropped); normalising independent Gamma draws gives a
Dirichlet(alpha) sample on the simplex:

- ``dirichlet``: alpha_i = 1, x_i = -log(1 - u_i) (an Exp(1) draw): the uniform Dirichlet.
- ``prior_dirichlet``: alpha_i = K * c * prior_i, x_i = P^-1(alpha_i, u_i) (the inverse regularised lower
  incomplete gamma function; P(1, x) = 1 - exp(-x)): a Dirichlet centred on the token-count prior, as RegMix and DeMix use.

The map is invertible up to scale: normalisation forgets the sum of x, so :meth:`Simplex.to_raw`
picks the scale that puts every u in [0, 1/2], where P(alpha, x) keeps full relative precision,
and ``to_weights(to_raw(w)) == w`` to ~1e-12 (for concentrations within a factor ~100 of each other;
beyond that float64 cannot hold every u and the round trip is approximate). Baselines are enqueued through this inverse exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

U_HIGH = 1.0 - 1e-12  # upper bound of u; x = -log(1e-12) = 27.6 is far in the Exp(1) tail
MIN_ALPHA = 0.02  # floor on prior concentrations: Gamma(alpha) medians underflow below ~0.01


def param_names(domains: Sequence[str]) -> list[str]:
    """The Optuna parameter names, one per domain in canonical order."""
    return [f"u_{d}" for d in domains]


@dataclass(frozen=True)
class Simplex:
    """An invertible map between raw uniform draws and points on the probability simplex.

    Example::

        s = Simplex.uniform(["prose", "code", "math"])
        w = s.to_weights(np.array([0.2, 0.5, 0.9]))  # a Dirichlet(1, 1, 1) point
        s.to_weights(s.to_raw(w))                     # == w
    """

    domains: tuple[str, ...]
    alpha: np.ndarray  # (K,) Dirichlet concentrations

    @classmethod
    def uniform(cls, domains: Sequence[str]) -> Simplex:
        return cls(tuple(domains), np.ones(len(domains)))

    @classmethod
    def around_prior(cls, domains: Sequence[str], prior: np.ndarray, concentration: float) -> Simplex:
        """Dirichlet(K * concentration * prior): mean = prior, more peaked as concentration grows."""
        p = np.asarray(prior, dtype=np.float64)
        p = p / p.sum()
        return cls(tuple(domains), np.maximum(len(domains) * concentration * p, MIN_ALPHA))

    @property
    def is_uniform(self) -> bool:
        return bool(np.all(self.alpha == 1.0))

    @property
    def names(self) -> list[str]:
        return param_names(self.domains)

    def distributions(self) -> dict[str, object]:
        """Optuna distributions of the raw parameters (imports optuna)."""
        from optuna.distributions import FloatDistribution

        return {n: FloatDistribution(0.0, U_HIGH) for n in self.names}

    def _x(self, u: np.ndarray) -> np.ndarray:
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, U_HIGH)
        if self.is_uniform:
            return -np.log1p(-u)  # the Exp(1) inverse CDF; same law as -log(u)
        from scipy.special import gammaincinv

        return gammaincinv(self.alpha, u)

    def _u(self, x: np.ndarray) -> np.ndarray:
        if self.is_uniform:
            return -np.expm1(-x)
        from scipy.special import gammainc

        return gammainc(self.alpha, x)

    def to_weights(self, u: np.ndarray) -> np.ndarray:
        """Raw draws (..., K) -> weights (..., K) on the simplex."""
        x = self._x(u)
        total = x.sum(axis=-1, keepdims=True)
        k = x.shape[-1]
        return np.where(total > 0, x / np.where(total > 0, total, 1.0), 1.0 / k)

    def to_raw(self, w: np.ndarray) -> np.ndarray:
        """Weights (K,) -> raw draws (K,) with ``to_weights(to_raw(w)) == w``.

        x = s * w for the scale s that puts the largest ratio x_i / median_i at 1, so every u is at
        most 1/2, where the lower-tail probability is computed to full relative precision.
        """
        w = np.asarray(w, dtype=np.float64)
        w = np.clip(w, 0.0, None)
        w = w / w.sum()
        if self.is_uniform:
            median = np.full_like(w, np.log(2.0))
        else:
            from scipy.special import gammaincinv

            median = gammaincinv(self.alpha, 0.5)
        pos = w > 0
        s = float(np.min(median[pos] / w[pos]))
        return np.clip(self._u(s * w), 0.0, U_HIGH)

    def params(self, w: np.ndarray) -> dict[str, float]:
        """Optuna params (``u_<domain>``) that map exactly to weights w."""
        return {n: float(v) for n, v in zip(self.names, self.to_raw(w), strict=True)}

    def from_params(self, params: Mapping[str, float]) -> np.ndarray:
        return self.to_weights(np.array([params[n] for n in self.names], dtype=np.float64))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n raw-uniform draws mapped to weights: (n, K) Dirichlet(alpha) samples."""
        return self.to_weights(rng.uniform(size=(n, len(self.domains))))
