"""The data-mixing law (Ye et al., ICLR 2025): fit, predict, optimise, cross-check.

Public API::

    fit(R, L, cfg.law, *, domains=, targets=, aggregate=, weights=) -> MixingLaw
    MixingLaw.predict(R) -> (n, V);  .predict_aggregate(R);  .t (V, K) interaction matrix
    learn_aggregate_weights(L, y) -> (V,)            # implicit aggregation (unknown validation mix)
    fit_with_overall(R, L, y, cfg.law, *, domains=, targets=, aggregate=) -> MixingLaw  # loss:overall
    split_overall(targets, L) -> (targets, L, y | None);  OVERALL = "overall"
    fit_power_laws(x, y) -> PowerLaws;  nested_extrapolate(R, L, step, size, target_step=, target_size=)
    optimize(law, bounds, *, weights=, starts=, seed=) -> Optimum;  bounds_for(cfg, domains, token_counts)
    optimize_for(cfg, law, domains) -> r (K,);  holdout_errors(table, cfg.law, weights, ...) -> dict
    read_table(path) -> LawTable;  tidy_to_wide(path, out);  save_fit / load_fit;  write_predictions
    read_references(run);  aggregate_weights(cfg, run, targets) -> (V,);  objective_weights(run, targets) -> ((V,), other tasks)
    check(cfg, run) -> dict   # writes law/check.json;  fit_and_save(source, dest, cfg.law, ...) -> FitResult
    compare(table, cfg.law, *, test=, folds=) -> dict  # the law's forms vs LightGBM vs linear, same folds
    LawTable.select(targets);  parse_targets("a,b")      # --targets

The core is pure (arrays in, arrays and dataclasses out): ``batch`` (the batched
Huber/Levenberg-Marquardt solver every fit uses), ``forms`` (one fit per form r^p and the
cross-validation that scores them), ``mixing`` (the law: one form, or an ensemble of them),
``compare`` (the law beside LightGBM and linear regression), ``starts`` (its start
grid, subsampled where many mixtures × domains make the paper's 6000 wasteful), ``scaling`` (step and size
laws), ``aggregate`` (the overall loss: given, learned weights), ``optimize`` (the law optimum
under the search's constraints, stated on r by :mod:`demix.mixture.bounds`), ``holdout`` (errors
on held-out rows), ``table`` (:class:`LawTable`). Files live in two modules: ``files`` (the user's
CSV tables, fit JSON, predictions) and ``stage`` (a run directory: ``demix law check`` and
``demix law fit``). torch and scipy are imported where used.
"""

from __future__ import annotations

from demix.law.aggregate import OVERALL, fit_with_overall, split_overall
from demix.law.compare import compare, parse_targets
from demix.law.files import load_fit, read_loss_weights, read_table, save_fit, tidy_to_wide, write_predictions
from demix.law.holdout import holdout_errors
from demix.law.mixing import MixingLaw, fit, learn_aggregate_weights
from demix.law.optimize import Optimum, optimize, optimize_for
from demix.law.run_io import aggregate_weights, objective_weights, read_references
from demix.law.scaling import Extrapolated, PowerLaws, at_target, fit_power_laws, nested_extrapolate
from demix.law.stage import FitResult, check, fit_and_save, resolve_input
from demix.law.starts import make_starts
from demix.law.table import LawTable
from demix.mixture.bounds import RatioBounds, bounds_for

__all__ = [
    "OVERALL",
    "Extrapolated",
    "FitResult",
    "LawTable",
    "MixingLaw",
    "Optimum",
    "PowerLaws",
    "RatioBounds",
    "aggregate_weights",
    "at_target",
    "bounds_for",
    "check",
    "compare",
    "fit",
    "fit_and_save",
    "fit_power_laws",
    "fit_with_overall",
    "holdout_errors",
    "learn_aggregate_weights",
    "load_fit",
    "make_starts",
    "nested_extrapolate",
    "objective_weights",
    "optimize",
    "optimize_for",
    "parse_targets",
    "read_loss_weights",
    "read_references",
    "read_table",
    "resolve_input",
    "save_fit",
    "split_overall",
    "tidy_to_wide",
    "write_predictions",
]
