"""Config section for the data-mixing law (Ye et al., ICLR 2025)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from demix.config.base import StrictModel


class LawConfig(StrictModel):
    """Fitting L_i(r) = c_i + k_i exp(sum_j t_ij r_j^p) and cross-checking the search with it.

    p = 1 is Ye et al.'s law. With several ``exponents`` the fit scores each p by ``cv_folds``-fold
    cross-validation on the rows it is given, then ``combine`` says whether the best one is used
    (the first listed wins ties and is used when there are too few rows to cross-validate) or all
    of them, weighted by their cross-validated error; see demix.law.mixing.
    """

    huber_delta: float = Field(default=0.02, gt=0)
    log_c_grid: tuple[float, float, int] = (-2.0, 1.5, 10)  # linspace(lo, hi, n) starts for log c
    log_k_grid: tuple[float, float, int] = (-10.0, 1.0, 20)  # linspace(lo, hi, n) starts for log k
    random_t: int = Field(default=30, gt=0)  # random t starts per (log c, log k) pair
    max_iter: int = Field(default=40, gt=0)  # LM iterations per start (best starts converge in ~20)
    screen_iter: int = Field(default=15, gt=0)  # float32 LM iterations of every start before the polish
    ridge: float = Field(default=1e-4, ge=0)  # 0.5*ridge*|t - mean t|^2 against wild t; 0: paper's fit
    polish: int = Field(
        default=32, ge=0
    )  # best starts per domain refit in float64 after a float32 pass; 0: off
    seed: int = 0
    aggregate_weights: dict[str, float] | None = None  # validation mix; default: token-count prior
    holdout_fraction: float = Field(default=0.25, gt=0, lt=1)  # trials held out by `law check`
    disagreement_tolerance: float = Field(default=0.1, gt=0)  # L1 distance between mixtures that is flagged
    threads: int | None = Field(default=1, gt=0)  # torch CPU threads for the fit (None: torch's default)
    check_splits: int = Field(default=3, gt=0)  # random fit/held-out splits averaged by `law check`
    optimize_starts: int = Field(default=16, gt=0)  # SLSQP starts for the law-optimal mixture
    target_step: float | None = Field(default=None, gt=0)  # nested laws: extrapolate to this many steps
    target_size: float | None = Field(default=None, gt=0)  # nested laws: ... and this model size (parameters)
    exponents: tuple[float, ...] = (1.0, 0.5)  # candidate p of r^p in the exponent; (1.0,): the paper's law
    # ensemble: every form fitted, predictions averaged with weights ∝ (CV MAE)^-combine_power (a form
    # that ranks best within one size need not across sizes; docs/perf/law.md); select: the CV-best form.
    combine: Literal["ensemble", "select"] = "ensemble"
    # 2 (not 1): within 0.0025 Spearman of the better form in all 19 cross-size cases measured, and
    # RegMix's 1M bars kept (power 1 drops Pile-CC to 0.989 / 0.984); 0: equal weights, the hedge.
    combine_power: float = Field(default=2.0, ge=0)
    cv_folds: int = Field(default=5, ge=2)  # folds of the cross-validation that picks p
    cv_starts: int = Field(default=200, gt=0)  # starts per domain and fold in that cross-validation
    # A start costs ~ mixtures × (domains + 2)² per iteration: beyond start_budget per domain, a seeded
    # random subset of the grid (and of cv_starts, polish) is used, never fewer than min_starts
    # (min_starts // 4 per fold, 8 polished). 6000 starts on 26 mixtures of 5 domains stay whole.
    start_budget: float = Field(default=8e6, gt=0)
    min_starts: int = Field(default=200, gt=0)

    @field_validator("exponents")
    @classmethod
    def _exponents(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v:
            raise ValueError("give at least one exponent (1.0 is the paper's law)")
        bad = [p for p in v if not 0.0 < p <= 1.0]
        if bad:
            raise ValueError(f"each must lie in (0, 1] (1: the paper's law), got {bad[0]}")
        if len(set(v)) != len(v):
            raise ValueError(f"exponents repeat a value: {list(v)}")
        return v
