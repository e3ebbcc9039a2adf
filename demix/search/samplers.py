"""Samplers by name: Optuna's (tpe, gp, cmaes, qmc, random) and DeMix's surrogate procedure.

Every sampler proposes the raw draws ``u_<domain>`` of :mod:`demix.search.simplex`; the map to
weights makes any of them sample the simplex. ``demix`` is an Optuna sampler too, so its trials live
in the same study as everyone else's: a trial's ``demix:slot`` ticket says which round it belongs to;
round 0 takes candidates from the pool in random order, each later round waits for the previous
rounds to finish, fits the LightGBM surrogate on every completed trial and takes the top predictions
not yet scored. Every worker computes the same round from the same trials and seed, so workers on
many machines split a round without talking to each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.config.search import DemixSamplerConfig
from demix.errors import ConfigError
from demix.mixture.constraints import Constraints
from demix.search import surrogate
from demix.search.simplex import Simplex
from demix.search.storage import SLOT, heartbeat_enabled

if TYPE_CHECKING:
    import optuna

SINGLE_OBJECTIVE_ONLY = ("cmaes", "demix")


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler may need: seeds, objective count, the simplex, constraints and the pool prior."""

    seed: int  # the study's seed (shared by workers: qmc, demix)
    worker_seed: int  # differs per worker and per resume, so random draws are not repeated
    n_objectives: int
    simplex: Simplex
    constraints: Constraints
    pool_prior: np.ndarray
    demix: DemixSamplerConfig


def _tpe(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(seed=ctx.worker_seed, multivariate=True, constant_liar=True)


def _gp(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=ctx.worker_seed)


def _cmaes(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    import optuna

    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise ConfigError("search.sampler=cmaes needs the `cmaes` package: pip install cmaes") from None
    return optuna.samplers.CmaEsSampler(seed=ctx.worker_seed, warn_independent_sampling=False)


def _qmc(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=ctx.seed, warn_independent_sampling=False
        )


def _random(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=ctx.worker_seed)


def _demix(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return make_demix_sampler(ctx)


SAMPLERS: dict[str, Callable[[SamplerContext], Any]] = {
    "tpe": _tpe,
    "gp": _gp,
    "cmaes": _cmaes,
    "qmc": _qmc,
    "random": _random,
    "demix": _demix,
}


def make_sampler(name: str, ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """The sampler called ``name``.

    Raises:
        ConfigError: an unknown name, or a single-objective sampler asked for several objectives.
    """
    if name not in SAMPLERS:
        raise ConfigError(f"search.sampler: unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")
    if ctx.n_objectives > 1 and name in SINGLE_OBJECTIVE_ONLY:
        raise ConfigError(
            f"search.sampler={name} optimises one objective, but search.objectives=groups asks for "
            f"{ctx.n_objectives}; use tpe, gp, qmc or random, or search.objectives=single"
        )
    return SAMPLERS[name](ctx)


def round_of(slot: int, rounds: Sequence[int]) -> tuple[int, int, int]:
    """(round, index within it, first slot of it); slots past the last round repeat its size."""
    start = 0
    r = 0
    while True:
        size = rounds[min(r, len(rounds) - 1)]
        if slot < start + size:
            return r, slot - start, start
        start += size
        r += 1


def make_demix_sampler(ctx: SamplerContext, poll_s: float = 0.5) -> optuna.samplers.BaseSampler:
    """DeMix's iterative surrogate search as an Optuna sampler (see the module docstring)."""
    import optuna

    class DemixSampler(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._fallback = optuna.samplers.RandomSampler(seed=ctx.worker_seed)
            self._pool: np.ndarray | None = None
            self._rounds: dict[int, np.ndarray] = {}

        def pool(self) -> np.ndarray:
            if self._pool is None:
                self._pool = surrogate.candidate_pool(ctx.pool_prior, ctx.demix, ctx.constraints, ctx.seed)
            return self._pool

        def infer_relative_search_space(
            self, study: optuna.Study, trial: optuna.trial.FrozenTrial
        ) -> dict[str, optuna.distributions.BaseDistribution]:
            return ctx.simplex.distributions()  # type: ignore[return-value]

        def sample_relative(
            self,
            study: optuna.Study,
            trial: optuna.trial.FrozenTrial,
            search_space: dict[str, optuna.distributions.BaseDistribution],
        ) -> dict[str, Any]:
            if trial.params or trial.system_attrs.get("fixed_params") or SLOT not in trial.system_attrs:
                return {}  # retries and enqueued trials keep their parameters
            r, j, start = round_of(int(trial.system_attrs[SLOT]), ctx.demix.rounds)
            cands = self._round(study, r, start)
            if j >= len(cands):  # the pool ran out of unseen candidates
                pool = self.pool()
                cands = pool[np.random.default_rng(ctx.seed + j).integers(len(pool), size=j + 1)]
            return ctx.simplex.params(cands[j])

        def _round(self, study: optuna.Study, r: int, start: int) -> np.ndarray:
            if r in self._rounds:
                return self._rounds[r]
            pool = self.pool()
            if r == 0:
                order = np.random.default_rng(ctx.seed).permutation(len(pool))
                out = pool[order[: ctx.demix.rounds[0]]]
            else:
                trials = self._wait_for(study, start)
                W = np.array([t.user_attrs["w"] for t in trials])
                y = np.array([t.value for t in trials])
                size = ctx.demix.rounds[min(r, len(ctx.demix.rounds) - 1)]
                out = surrogate.propose(W, y, pool, size, ctx.demix, ctx.seed + r)
            self._rounds[r] = out
            return out

        def _wait_for(self, study: optuna.Study, start: int) -> list[optuna.trial.FrozenTrial]:
            """Block until every trial of the earlier rounds has finished; return the completed ones."""
            S = optuna.trial.TrialState
            while True:
                trials = study.get_trials(deepcopy=False)
                busy = [
                    t
                    for t in trials
                    if t.state in (S.RUNNING, S.WAITING) and int(t.system_attrs.get(SLOT, 1 << 30)) < start
                ]
                if not busy:
                    done = [t for t in trials if t.state == S.COMPLETE and "w" in t.user_attrs]
                    return sorted(done, key=lambda t: t.number)
                if heartbeat_enabled(study._storage):
                    optuna.storages.fail_stale_trials(study)
                time.sleep(poll_s)

        def sample_independent(
            self,
            study: optuna.Study,
            trial: optuna.trial.FrozenTrial,
            param_name: str,
            param_distribution: optuna.distributions.BaseDistribution,
        ) -> Any:
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    return DemixSampler()
