"""Samplers by name: Optuna's (tpe, gp, cmaes, qmc, random) and DeMix's surrogate procedure.

Every sampler proposes the raw draws ``u_<domain>`` of :mod:`demix.search.simplex`; the map to
weights makes any of them sample the simplex. Files: ``context`` (:class:`SamplerContext`, what a
factory is given), ``stock`` (Optuna's samplers), ``demix`` (:class:`DemixSampler`, DeMix's rounds
of surrogate predictions), ``rounds`` (which round a ticket belongs to). Optuna is imported when a
sampler is made, not when this package is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from demix.errors import ConfigError
from demix.search.samplers import stock
from demix.search.samplers.context import SamplerContext
from demix.search.samplers.rounds import round_of

if TYPE_CHECKING:
    import optuna

    from demix.search.samplers.demix import DemixSampler

SamplerFactory = Callable[[SamplerContext], "optuna.samplers.BaseSampler"]
SINGLE_OBJECTIVE_ONLY = ("cmaes", "demix")


def _demix(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    # Imported here: the module imports Optuna, which `import demix.search` must not.
    from demix.search.samplers.demix import DemixSampler

    return DemixSampler(ctx)


SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": stock.tpe,
    "gp": stock.gp,
    "cmaes": stock.cmaes,
    "qmc": stock.qmc,
    "random": stock.random,
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


def __getattr__(name: str) -> Any:
    """``DemixSampler`` on first use (its module imports Optuna)."""
    if name == "DemixSampler":
        from demix.search.samplers.demix import DemixSampler

        return DemixSampler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SAMPLERS",
    "SINGLE_OBJECTIVE_ONLY",
    "DemixSampler",
    "SamplerContext",
    "SamplerFactory",
    "make_sampler",
    "round_of",
]
