"""Recommend, export and report: what a data team gets at the end of a search.

Public API::

    recommend(cfg, run) -> Recommendation        # surrogate top-k, best trial, law optimum side by side
    export(cfg, run, target_tokens=None) -> list[Path]   # export/recommended_mixture.{json,yaml,csv}, ...
    report(cfg, run) -> Path                    # report/report.html (self-contained) and report.md

Modules: ``table`` (trials.csv -> arrays), ``choices`` (candidates, bootstrap, Pareto, beta edge),
``plan`` (tokens and epochs per source), ``formats`` (every file format), ``recommend``, ``stage``
(export), ``report``, ``plots``, ``lawview`` / ``lawsection`` (the law's part). matplotlib, optuna and
LightGBM are imported where used.
"""

from __future__ import annotations

from demix.export.choices import Candidate, bootstrap_interval, edge_warning, pareto_front
from demix.export.plan import SCHEMA, TokenPlan, round_shares, split_tokens, token_plan
from demix.export.recommend import Recommendation, recommend
from demix.export.report import report
from demix.export.stage import export
from demix.export.table import TrialsTable, load_trials, parse_trials_csv

__all__ = [
    "SCHEMA",
    "Candidate",
    "Recommendation",
    "TokenPlan",
    "TrialsTable",
    "bootstrap_interval",
    "edge_warning",
    "export",
    "load_trials",
    "pareto_front",
    "parse_trials_csv",
    "recommend",
    "report",
    "round_shares",
    "split_tokens",
    "token_plan",
]
