"""Config section for the data-mixing law (Ye et al., ICLR 2025)."""

from __future__ import annotations

from pydantic import Field

from demix.config.base import StrictModel


class LawConfig(StrictModel):
    """Fitting L_i(r) = c_i + k_i exp(sum_j t_ij r_j) and cross-checking the search with it."""

    huber_delta: float = Field(default=0.02, gt=0)
    log_c_grid: tuple[float, float, int] = (-2.0, 1.5, 10)  # linspace(lo, hi, n) starts for log c
    log_k_grid: tuple[float, float, int] = (-10.0, 1.0, 20)  # linspace(lo, hi, n) starts for log k
    random_t: int = Field(default=30, gt=0)  # random t starts per (log c, log k) pair
    max_iter: int = Field(default=200, gt=0)  # L-BFGS iterations per fit
    seed: int = 0
    aggregate_weights: dict[str, float] | None = None  # validation mix; default: token-count prior
    holdout_fraction: float = Field(default=0.25, gt=0, lt=1)  # trials held out by `law check`
    disagreement_tolerance: float = Field(default=0.1, gt=0)  # L1 distance between mixtures that is flagged
