"""Samplers whose draw for a trial is a function of the study's seed and the trial's ticket.

Optuna's ``RandomSampler`` draws from one stream per sampler object: a worker restarted after
``kill -9`` starts that stream again and redraws weights it already scored, and two workers (or
machines) need different seeds, so the mixtures a study scores depend on who scored them. Seeding
each trial's draw by its ``demix:slot`` ticket instead makes a study the same however many workers
share it, wherever they run, and however often it was interrupted: slot s always draws the same u.
Trials without a ticket (enqueued baselines, retries) keep the parameters they were given.

Importing this module imports Optuna; the registry in :mod:`demix.search.samplers` imports it only
when such a sampler is made.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import optuna

from demix.search.samplers.context import SamplerContext
from demix.search.simplex import U_HIGH
from demix.search.storage import SLOT


class TicketSampler(optuna.samplers.BaseSampler):
    """What a sampler that draws every raw parameter at once per ticket shares: the search space
    (the simplex's raw parameters), the trials it leaves alone, and a fallback for anything else."""

    def __init__(self, ctx: SamplerContext) -> None:
        self._ctx = ctx
        self._fallback = optuna.samplers.RandomSampler(seed=ctx.worker_seed)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self._ctx.simplex.distributions()  # type: ignore[return-value]

    @staticmethod
    def ticket(trial: optuna.trial.FrozenTrial) -> int | None:
        """The trial's ticket, or None for trials that keep their parameters (retries, enqueued)."""
        if trial.params or trial.system_attrs.get("fixed_params") or SLOT not in trial.system_attrs:
            return None
        return int(trial.system_attrs[SLOT])

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        slot = self.ticket(trial)
        return {} if slot is None else self.draw(study, slot)  # no ticket: the trial keeps its parameters

    @abc.abstractmethod
    def draw(self, study: optuna.Study, slot: int) -> dict[str, Any]:
        """The raw parameters of ticket ``slot`` (every subclass's one method)."""

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)


class SlotRandomSampler(TicketSampler):
    """Independent uniform draws of the raw parameters, seeded by (study seed, ticket)."""

    def draw(self, study: optuna.Study, slot: int) -> dict[str, Any]:
        rng = np.random.default_rng([self._ctx.seed, slot])
        names = self._ctx.simplex.names
        return {n: float(v) for n, v in zip(names, rng.uniform(0.0, U_HIGH, len(names)), strict=True)}
