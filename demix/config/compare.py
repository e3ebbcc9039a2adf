"""Config section ``compare:``: every mixing method on the run's candidates, each answer checked by
training (``demix compare``, :mod:`demix.compare`).

Defaults make the comparison fair without tuning: every method's data mixture r is checked by one
model trained from the base with the same budget (the references' by default), and the swarm that
RegMix and the law share is drawn around the token prior at the references' scale, so the
validation references are reused when they exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from demix.config.base import Count, StrictModel

BUILTIN_METHODS = ("demix", "prior", "uniform", "regmix", "law", "doremi")


class SwarmConfig(StrictModel):
    """The small trained models RegMix's regressor and the law are fitted on (one swarm for both)."""

    count: int = Field(default=16, ge=2)
    tokens: Count | None = None  # default validate.reference_tokens, else train.reference_tokens
    # Dirichlet α = concentration · K · prior (prior: token counts): 1 with a uniform prior is flat.
    concentration: float = Field(default=1.0, gt=0)
    reuse_validation: bool = True  # add validation/ references trained on the same budget
    seed: int = 4321
    # dirichlet: RegMix's draws around the prior (concentration); double_diminishing: the Data Mixing
    # Laws' proportions g·floor(m/g)·2^-s (s = 0..halvings) and 0 per domain, m its cap under the run's
    # constraints and epoch cap, combinations summing to 1 (demix.compare.designs).
    sampler: Literal["dirichlet", "double_diminishing"] = "dirichlet"
    granularity: float = Field(default=1 / 16, gt=0, le=1)
    halvings: int = Field(default=3, ge=0, le=10)


class RegMixSettings(StrictModel):
    """RegMix's answer: the mean of the top-k LightGBM predictions over a Dirichlet candidate pool."""

    top_k: int = Field(default=128, ge=1)
    pool_size: int = Field(default=100_000, ge=1)


class LawSettings(StrictModel):
    """The law fitted on the swarm.

    ``subset``: fit on the subset of this many swarm runs whose fitted law has the lowest fitting
    error (the Data Mixing Laws' selection of fitting runs: runs the law cannot describe are left
    out), among every subset or ``subset_draws`` seeded ones when there are more; None: every run. ``step_law``: when the swarm trained fewer tokens than the check models, each
    member's held-out loss curve (``eval_log.jsonl``) is extrapolated to the check budget's step by
    the step law before the mixing law is fitted (the nested laws; every model here starts from the
    base, so there is one model size and no size law).
    """

    subset: int | None = Field(default=None, ge=2)
    subset_draws: int = Field(default=16, ge=1)
    step_law: bool = True


class DoReMiSettings(StrictModel):
    """DoReMi's reference (trained on the prior mixture) and proxy; None: ``train.doremi``'s value."""

    eta: float | None = Field(default=None, gt=0)
    epsilon: float | None = Field(default=None, ge=0, le=1)
    tokens: Count | None = None  # reference and proxy each (default: the check budget)


class CheckConfig(StrictModel):
    """One model per method's mixture, from the base, on the same budget, scored on the report tasks."""

    tokens: Count | None = None  # default train.reference_tokens, else train.component_tokens
    seeds: int = Field(default=1, ge=1)  # models per mixture (different data order)
    bootstrap: int = Field(default=1000, ge=0)  # resamples for the score intervals
    seed: int = 0


class CompareConfig(StrictModel):
    """Which methods to compare and at what compute.

    ``mixtures`` are hand-given data mixtures by name (a team's own recipe), ratios by domain
    (normalised; unnamed domains get 0); each one named in ``methods`` is compared too (by default
    every one is).
    """

    methods: tuple[str, ...] | None = None  # default: BUILTIN_METHODS + every hand mixture
    mixtures: dict[str, dict[str, Annotated[float, Field(ge=0)]]] = Field(default_factory=dict)
    swarm: SwarmConfig = Field(default_factory=SwarmConfig)
    regmix: RegMixSettings = Field(default_factory=RegMixSettings)
    law: LawSettings = Field(default_factory=LawSettings)
    doremi: DoReMiSettings = Field(default_factory=DoReMiSettings)
    check: CheckConfig = Field(default_factory=CheckConfig)

    @field_validator("mixtures")
    @classmethod
    def _mixture_names(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name, mix in v.items():
            if name in BUILTIN_METHODS:
                raise ValueError(f"compare.mixtures.{name}: the name of a built-in method")
            if not mix or sum(mix.values()) <= 0:
                raise ValueError(f"compare.mixtures.{name}: give at least one positive ratio")
        return v

    @model_validator(mode="after")
    def _known_methods(self) -> CompareConfig:
        for m in self.methods or ():
            if m not in BUILTIN_METHODS and m not in self.mixtures:
                raise ValueError(
                    f"compare.methods: {m!r} is neither a method ({', '.join(BUILTIN_METHODS)}) "
                    "nor a name in compare.mixtures"
                )
        if self.methods is not None and len(set(self.methods)) != len(self.methods):
            raise ValueError("compare.methods: a method is named twice")
        return self

    @property
    def method_names(self) -> list[str]:
        return list(self.methods) if self.methods is not None else [*BUILTIN_METHODS, *self.mixtures]
