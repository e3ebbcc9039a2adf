"""The search stage: an Optuna study over merge weights on the simplex.

Public API::

    run_search(cfg, run, *, workers=None, storage=None, n_trials=None) -> optuna.Study
    recommend_topk(W, y, prior, cfg.search.demix, constraints, seed) -> (w, info)
    build_constraints(...), Constraints, Simplex, make_sampler(name, ctx), SAMPLERS

Modules: ``simplex`` (raw draws <-> weights), ``constraints`` (bounds on w, repair),
``samplers`` (registry incl. DeMix's surrogate sampler), ``surrogate`` (LightGBM pool, top-k),
``storage`` (sqlite / journal / URL, tickets, crash recovery), ``scoring`` (Score, objective),
``proxy`` (the real merge + lm-eval scorer), ``driver`` (run_search), ``trials`` (trials.csv),
``recommend`` (recommendation.json). Optuna, LightGBM and torch are imported where used.
"""

from __future__ import annotations

from demix.search.constraints import Constraints, build_constraints
from demix.search.driver import run_search
from demix.search.samplers import SAMPLERS, SamplerContext, make_sampler
from demix.search.scoring import Score, Scorer, TaskMetric, group_objectives, objective
from demix.search.simplex import Simplex
from demix.search.surrogate import candidate_pool, pool_prior, recommend_topk

__all__ = [
    "SAMPLERS",
    "Constraints",
    "SamplerContext",
    "Score",
    "Scorer",
    "Simplex",
    "TaskMetric",
    "build_constraints",
    "candidate_pool",
    "group_objectives",
    "make_sampler",
    "objective",
    "pool_prior",
    "recommend_topk",
    "run_search",
]
