"""The recommendation: which mixture to train on, chosen among the surrogate's top-k, the best trial
and the law's optimum, with bootstrap intervals and the beta edge.

Public API::

    recommend(cfg, run) -> Recommendation        # surrogate top-k, best trial, law optimum side by side
    finished_trials(cfg, run) -> TrialsTable     # search/trials.csv of a finished search, completed rows

Modules: ``table`` (trials.csv -> arrays), ``choices`` (candidates, bootstrap, Pareto, beta edge),
``law`` (the law's candidate), ``build`` (the recommendation and its cache). optuna and LightGBM are
imported where used.
"""

from __future__ import annotations

from demix.recommend.build import Recommendation, finished_trials, recommend
from demix.recommend.choices import Candidate, bootstrap_interval, edge_warning, pareto_front
from demix.recommend.table import TrialsTable, load_trials, parse_trials_csv

__all__ = [
    "Candidate",
    "Recommendation",
    "TrialsTable",
    "bootstrap_interval",
    "edge_warning",
    "finished_trials",
    "load_trials",
    "pareto_front",
    "parse_trials_csv",
    "recommend",
]
