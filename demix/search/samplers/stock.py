"""Optuna's own samplers as demix uses them: TPE, GP, CMA-ES, Sobol QMC and random.

Each factory takes a :class:`~demix.search.samplers.context.SamplerContext`. Samplers that draw
differently per worker take the worker's seed; QMC takes the study's, so workers share one Sobol
sequence.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from demix.errors import ConfigError
from demix.search.samplers.context import SamplerContext

if TYPE_CHECKING:
    import optuna


def tpe(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """Multivariate TPE; ``constant_liar`` keeps parallel workers from proposing the same point."""
    import optuna

    return optuna.samplers.TPESampler(seed=ctx.worker_seed, multivariate=True, constant_liar=True)


def gp(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """Gaussian-process Bayesian optimisation."""
    import optuna

    return optuna.samplers.GPSampler(seed=ctx.worker_seed)


def cmaes(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """CMA-ES (single objective; needs the ``cmaes`` package).

    Raises:
        ConfigError: ``cmaes`` is not installed.
    """
    import optuna

    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise ConfigError("search.sampler=cmaes needs the `cmaes` package: pip install cmaes") from None
    return optuna.samplers.CmaEsSampler(seed=ctx.worker_seed, warn_independent_sampling=False)


def qmc(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """Scrambled Sobol points, seeded by the study so every worker walks the same sequence."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=ctx.seed, warn_independent_sampling=False
        )


def random(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """Independent uniform draws, each trial's seeded by its ticket (:mod:`.slotted`): the same study
    for any number of workers, and after a ``kill -9`` and rerun."""
    from demix.search.samplers.slotted import SlotRandomSampler

    return SlotRandomSampler(ctx)
