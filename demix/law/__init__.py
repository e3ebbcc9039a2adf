"""The data-mixing law stage (Ye et al., ICLR 2025): fit, predict, optimise, cross-check.

Public API::

    fit(R, L, cfg.law, *, domains=, targets=, aggregate=, weights=) -> MixingLaw
    MixingLaw.predict(R) -> (n, V);  .predict_aggregate(R);  .t (V, K) interaction matrix
    learn_aggregate_weights(L, y) -> (V,)            # implicit aggregation (unknown validation mix)
    fit_with_overall(R, L, y, cfg.law, *, domains=, targets=, aggregate=) -> MixingLaw  # loss:overall
    split_overall(targets, L) -> (targets, L, y | None);  OVERALL = "overall"
    fit_power_laws(x, y) -> PowerLaws;  nested_extrapolate(R, L, step, size, target_step=, target_size=)
    optimize(law, bounds, *, weights=, starts=, seed=) -> Optimum;  bounds_for(cfg, domains, token_counts)
    optimize_for(cfg, law, domains) -> r (K,)
    read_table(path) -> LawTable;  tidy_to_wide(path, out);  read_references(run);  load_fit(run)
    aggregate_weights(cfg, run, targets) -> (V,);  check(cfg, run) -> dict   # writes law/check.json

Modules: ``batch`` (the batched Huber/Levenberg-Marquardt solver every fit uses), ``mixing`` (the
law), ``scaling`` (step and size laws), ``optimize`` (law optimum under the search's constraints),
``aggregate`` (the overall loss: given, learned weights), ``io`` (tables and fit files), ``check`` (the cross-check). torch and scipy are imported where used.
"""

from __future__ import annotations

from demix.law.aggregate import OVERALL, fit_with_overall, split_overall
from demix.law.check import check, holdout_errors
from demix.law.io import (
    LawTable,
    aggregate_weights,
    load_fit,
    read_references,
    read_table,
    resolve_input,
    save_fit,
    tidy_to_wide,
)
from demix.law.mixing import MixingLaw, fit, learn_aggregate_weights, make_starts
from demix.law.optimize import Optimum, RatioBounds, bounds_for, optimize, optimize_for
from demix.law.scaling import Extrapolated, PowerLaws, at_target, fit_power_laws, nested_extrapolate

__all__ = [
    "OVERALL",
    "Extrapolated",
    "LawTable",
    "MixingLaw",
    "Optimum",
    "PowerLaws",
    "RatioBounds",
    "aggregate_weights",
    "at_target",
    "bounds_for",
    "check",
    "fit",
    "fit_power_laws",
    "fit_with_overall",
    "holdout_errors",
    "learn_aggregate_weights",
    "load_fit",
    "make_starts",
    "nested_extrapolate",
    "optimize",
    "optimize_for",
    "read_references",
    "read_table",
    "resolve_input",
    "save_fit",
    "split_overall",
    "tidy_to_wide",
]
