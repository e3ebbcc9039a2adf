"""Config section for the Optuna search over merge weights."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from demix.config.base import StrictModel


class GroupCap(StrictModel):
    """A cap on the summed share of a group of domains (e.g. all math tiers together)."""

    domains: list[str] = Field(min_length=1)
    min: float = Field(default=0.0, ge=0, le=1)
    max: float = Field(default=1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _order(self) -> GroupCap:
        if self.min > self.max:
            raise ValueError(f"group cap min={self.min} > max={self.max}")
        return self


class ConstraintsConfig(StrictModel):
    """Constraints on the data mixture, shared by search, the law optimum and export.

    Shares are data ratios r unless ``on: weights`` says they constrain merge weights w.
    """

    on: Literal["ratios", "weights"] = "ratios"
    min: dict[str, float] = Field(default_factory=dict)
    max: dict[str, float] = Field(default_factory=dict)
    fixed: dict[str, float] = Field(default_factory=dict)
    groups: list[GroupCap] = Field(default_factory=list)
    cap_epochs: bool = (
        True  # cap each r_i at export.max_epochs passes over its tokens at export.target_tokens
    )

    @model_validator(mode="after")
    def _ranges(self) -> ConstraintsConfig:
        for key in ("min", "max", "fixed"):
            for name, v in getattr(self, key).items():
                if not 0.0 <= v <= 1.0:
                    raise ValueError(f"{key}.{name}={v} must be within [0, 1]")
        for name in set(self.min) & set(self.max):
            if self.min[name] > self.max[name]:
                raise ValueError(f"min.{name}={self.min[name]} > max.{name}={self.max[name]}")
        if sum(self.fixed.values()) > 1.0 + 1e-9:
            raise ValueError(f"fixed shares sum to {sum(self.fixed.values()):.4g} > 1")
        if sum(self.min.values()) > 1.0 + 1e-9:
            raise ValueError(f"minimum shares sum to {sum(self.min.values()):.4g} > 1")
        return self

    def domains(self) -> set[str]:
        names = set(self.min) | set(self.max) | set(self.fixed)
        for g in self.groups:
            names |= set(g.domains)
        return names


class DemixSamplerConfig(StrictModel):
    """DeMix's iterative surrogate search (RegMix-style LightGBM on proxy scores)."""

    rounds: list[int] = Field(default_factory=lambda: [64, 32, 16])  # proxies scored per round
    pool_size: int = Field(default=200_000, gt=0)  # candidate mixtures scored by the surrogate
    top_k: int = Field(default=128, gt=0)  # recommended mixture = mean of the top-k predictions
    prior_power: float = Field(default=0.7, gt=0)  # pool prior = token counts ** prior_power
    concentrations: tuple[float, float, int] = (0.5, 5.0, 15)  # log-spaced Dirichlet scales (lo, hi, n)
    max_prior_multiple: float = Field(default=4.0, gt=0)  # cap each domain at this multiple of its prior
    num_boost_round: int = Field(default=300, gt=0)
    learning_rate: float = Field(default=0.02, gt=0)


class SearchConfig(StrictModel):
    """An Optuna study whose trials are merge-weight vectors on the simplex."""

    sampler: Literal["tpe", "gp", "cmaes", "qmc", "random", "demix"] = "tpe"
    n_trials: int = Field(default=112, gt=0)  # trials after the baselines
    seed: int = 0
    parameterization: Literal["dirichlet", "prior_dirichlet"] = "dirichlet"
    prior_concentration: float = Field(default=1.0, gt=0)  # for prior_dirichlet: alpha = K * c * prior
    min_weight: float = Field(default=0.0, ge=0, lt=1)  # weights below this are dropped (set to 0)
    constraints: ConstraintsConfig = Field(default_factory=ConstraintsConfig)
    objectives: Literal["single", "groups"] = "single"  # groups: one objective per capability group
    storage: str | None = None  # Optuna storage URL; default: sqlite (1 worker) / journal (>1) in the run
    study_name: str | None = None  # default: the experiment name
    workers: int = Field(default=1, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    token_counts: dict[str, int] | None = None  # priors when components are brought from elsewhere
    demix: DemixSamplerConfig = Field(default_factory=DemixSamplerConfig)
