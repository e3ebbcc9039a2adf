"""The search stage: an Optuna study over merge weights on the simplex.

Public API::

    run_search(cfg, run, *, workers=None, storage=None, n_trials=None) -> optuna.Study
    recommend_topk(W, y, prior, cfg.search.demix, constraints, seed) -> (w, info)
    Simplex, make_sampler(name, ctx), SAMPLERS

Modules: ``simplex`` (raw draws <-> weights),
``samplers`` (registry incl. DeMix's surrogate sampler), ``surrogate`` (LightGBM pool, top-k),
``storage`` (sqlite / journal / URL, tickets, crash recovery), ``scoring`` (Score, objective),
``proxy`` (the real merge + lm-eval scorer), ``driver`` (run_search), ``trials`` (trials.csv),
``topk`` (search/recommendation.json). Optuna, LightGBM and torch are imported where used.
"""

from __future__ import annotations

from demix.search.driver import run_search
from demix.search.samplers import SAMPLERS, SamplerContext, make_sampler
from demix.search.scoring import Score, Scorer, TaskMetric, group_objectives, objective
from demix.search.simplex import Simplex
from demix.search.surrogate import candidate_pool, pool_prior, recommend_topk

__all__ = [
    "SAMPLERS",
    "SamplerContext",
    "Score",
    "Scorer",
    "Simplex",
    "TaskMetric",
    "candidate_pool",
    "group_objectives",
    "make_sampler",
    "objective",
    "pool_prior",
    "recommend_topk",
    "run_search",
]
