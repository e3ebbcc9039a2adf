"""The search stage: an Optuna study over merge weights on the simplex.

Public API::

    run_search(cfg, run, *, workers=None, storage=None, n_trials=None) -> optuna.Study
    recommend_topk(W, y, prior, cfg.search.demix, constraints, seed) -> (w, info)
    surrogate_inputs(cfg, run) -> SurrogateInputs   # what a later refit of the surrogate needs
    Simplex, make_sampler(name, ctx), SAMPLERS

Modules: ``simplex`` (raw draws <-> weights), ``samplers/`` (the registry: Optuna's samplers in
``stock``, :class:`~demix.search.samplers.demix.DemixSampler` in ``demix``), ``surrogate`` (LightGBM
pool, top-k), ``storage`` (sqlite / journal / URL, tickets, crash recovery), ``scoring`` (Score of a
proxy, the Scorer protocol; the objective itself is :mod:`demix.evaluate.scores`'),
``proxy`` (the real merge + lm-eval scorer), ``driver`` (run_search), ``trials`` (trials.csv),
``topk`` (search/recommendation.json). Optuna, LightGBM and torch are imported where used.
"""

from __future__ import annotations

from demix.search.context import SurrogateInputs, surrogate_inputs
from demix.search.driver import run_search
from demix.search.samplers import SAMPLERS, SamplerContext, make_sampler
from demix.search.scoring import Score, Scorer
from demix.search.simplex import Simplex
from demix.search.surrogate import candidate_pool, pool_prior, recommend_topk

__all__ = [
    "SAMPLERS",
    "SamplerContext",
    "Score",
    "Scorer",
    "Simplex",
    "SurrogateInputs",
    "candidate_pool",
    "make_sampler",
    "pool_prior",
    "recommend_topk",
    "run_search",
    "surrogate_inputs",
]
