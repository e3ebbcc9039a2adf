"""The law's run-directory stages: ``demix law check`` (the cross-check) and ``demix law fit``.

The check fits the law on part of the trials and predicts the rest (MAE, relative error,
Spearman), over ``law.check_splits`` random splits; fits it on all trials; finds its optimum under
the search's constraints; and compares that with the search's recommendation
(``search/recommendation.json``). An L1 distance between the two mixtures beyond
``law.disagreement_tolerance`` is flagged: two independent models of the same measurements
disagree about where the best mixture is.

Everything here reads or writes files of a run (trials, references, baselines, the manifest,
``law/fit.json``, ``law/check.json``); the fitting itself is the pure core (:mod:`.mixing`,
:mod:`.holdout`, :mod:`.optimize`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import StageError
from demix.law.aggregate import fit_with_overall, split_overall
from demix.law.files import read_loss_weights, read_table, save_fit
from demix.law.holdout import holdout_errors
from demix.law.mixing import MixingLaw, fit
from demix.law.optimize import Optimum, optimize
from demix.law.run_io import (
    aggregate_weights,
    check_weights,
    read_recommendation,
    read_references,
    run_token_counts,
)
from demix.law.scaling import at_target
from demix.mixture import as_dict
from demix.mixture.bounds import RatioBounds, bounds_for
from demix.util.hashing import hash_file, hash_json
from demix.util.io import write_json_atomic
from demix.util.provenance import provenance

if TYPE_CHECKING:
    from demix.config import ExperimentConfig
    from demix.config.law import LawConfig
    from demix.run import RunDir


# ---- demix law check ---------------------------------------------------------------------------


def _optima(
    cfg: ExperimentConfig, law: MixingLaw, bounds: RatioBounds, domains: list[str]
) -> tuple[Optimum, Optimum]:
    """(optimum where the proxies reach, unrestricted optimum).

    Proxies only cover mixtures with at least beta general data, so the law is fitted there and its
    optimum is compared with the search's inside that region; the optimum outside it is reported
    too, as an extrapolation.
    """
    lc = cfg.law
    free = optimize(law, bounds, starts=lc.optimize_starts, seed=lc.seed)
    opt = free
    if cfg.general in domains and cfg.train.beta > 0:
        g = domains.index(cfg.general)
        reach = dataclasses.replace(bounds, lo=bounds.lo.copy())
        reach.lo[g] = max(reach.lo[g], cfg.train.beta)
        if reach.lo.sum() <= 1.0 + 1e-9 and reach.lo[g] <= reach.hi[g]:
            opt = optimize(law, reach, starts=lc.optimize_starts, seed=lc.seed)
    return opt, free


def _compare(
    lc: LawConfig, law: MixingLaw, opt: Optimum, rec: np.ndarray | None, domains: list[str]
) -> tuple[dict[str, Any], str]:
    """The comparison with the search's recommendation r (K,), and the verdict line."""
    comparison: dict[str, Any] = {"available": rec is not None}
    if rec is None:
        return comparison, "no search recommendation to compare with (search/recommendation.json)"
    l1 = float(np.abs(opt.r - rec).sum())
    rec_loss = float(law.predict_aggregate(rec)[0])
    disagree = l1 > lc.disagreement_tolerance
    comparison |= {
        "search_r": as_dict(rec, domains),
        "l1_distance": l1,
        "tolerance": lc.disagreement_tolerance,
        "disagree": disagree,
        "law_loss_at_search": rec_loss,
        "law_loss_at_optimum": opt.loss,
    }
    verdict = (
        f"DISAGREE: the law optimum is {l1:.3f} (L1) from the search's recommendation, beyond the "
        f"tolerance {lc.disagreement_tolerance:g}; the law predicts {rec_loss:.4f} there vs {opt.loss:.4f}"
        if disagree
        else f"agree: the law optimum is {l1:.3f} (L1) from the search's recommendation "
        f"(tolerance {lc.disagreement_tolerance:g})"
    )
    return comparison, verdict


def check(cfg: ExperimentConfig, run: RunDir) -> dict[str, Any]:
    """Cross-check the search with the law; write ``law/check.json`` (and ``law/fit.json``).

    Returns:
        The ``check.json`` document: hold-out errors, the law optimum, the comparison with the
        search's recommendation (``disagree``: True when their L1 distance exceeds the tolerance).

    Raises:
        StageError: the search has not written ``search/trials.csv``, or too few trials.
    """
    if not run.trials_csv.is_file():
        raise StageError(f"{run.trials_csv} missing: run `demix search {run.root}` first")
    table = read_table(run.trials_csv)
    lc = cfg.law
    s, aggregate_source = check_weights(cfg, run, table.targets)
    errors = holdout_errors(table, lc, s, splits=lc.check_splits, holdout=lc.holdout_fraction)
    ok = np.isfinite(table.L).all(axis=1)
    law = fit(table.R[ok], table.L[ok], lc, domains=table.domains, targets=table.targets, aggregate=s)
    inputs = {"trials": hash_file(run.trials_csv), "law": hash_json(lc.model_dump(mode="json"))}
    save_fit(law, run.law / "fit.json", {"source": str(run.trials_csv), "provenance": provenance(inputs)})
    bounds = bounds_for(cfg, table.domains, run_token_counts(cfg, run, table.domains))
    opt, free = _optima(cfg, law, bounds, table.domains)
    rec, rec_hash = read_recommendation(run, table.domains)
    comparison, verdict = _compare(lc, law, opt, rec, table.domains)
    if rec is not None:
        inputs["recommendation"] = rec_hash
    m = errors["mean"]
    summary = (
        f"law fitted on {errors['fit_on']} trials predicts {errors['held_out']} held-out ones with overall-loss "
        f"MAE {m['mae']:.4f} ({100 * m['relative_error']:.2f}%), Spearman {m['spearman']:.2f} "
        f"(mean of {lc.check_splits} splits)"
    )
    doc = {
        "domains": table.domains,
        "targets": table.targets,
        "aggregate_weights": as_dict(s, table.targets),
        "aggregate_source": aggregate_source,
        "holdout": {k: v for k, v in errors.items() if k != "points"},
        "points": [p for p in errors["points"] if p["split"] == 0],
        "law_optimum": {"r": as_dict(opt.r, table.domains), "predicted_loss": opt.loss},
        "law_optimum_unrestricted": {
            "r": as_dict(free.r, table.domains),
            "predicted_loss": free.loss,
            "note": "may lie outside the mixtures the proxies cover (less general data than train.beta): "
            "an extrapolation of the law",
        },
        "comparison": comparison,
        "summary": summary,
        "verdict": verdict,
        "provenance": provenance(inputs),
    }
    write_json_atomic(run.law / "check.json", doc)
    return doc


# ---- demix law fit -----------------------------------------------------------------------------


def resolve_input(path: str | Path, *, references: bool = False) -> tuple[Path, Path | None]:
    """(file to read, run directory or None) for ``demix law fit CSV_OR_RUN``.

    A run directory means its ``search/trials.csv``, or with ``references`` its
    ``validation/validation.json``; anything else is a measurement CSV.
    """
    p = Path(path)
    if references:
        from demix.run import RunDir  # imported here: `import demix.law` stays light

        return RunDir(p).validation / "validation.json", p
    if p.is_dir():
        csv_path = p / "search" / "trials.csv"
        if not csv_path.is_file():
            raise StageError(f"{csv_path} missing: run `demix search {p}` first", path=None)
        return csv_path, p
    return p, None


@dataclass(frozen=True)
class FitResult:
    """What ``demix law fit`` fitted and wrote.

    Attributes:
        law: the fitted law.
        path: the fit JSON written.
        mixtures: rows (mixtures) fitted, after the nested extrapolation to the target step/size.
        fit_error: mean absolute error of the law on the losses it was fitted to.
        overall: how a measured ``loss:overall`` was aggregated (``None`` without that column).
        rescaled: rows whose written shares missed 1 within their precision and were rescaled.
    """

    law: MixingLaw
    path: Path
    mixtures: int
    fit_error: float
    overall: str | None = None
    rescaled: int = 0


def fit_and_save(
    source: Path,
    dest: Path,
    lc: LawConfig,
    *,
    cfg: ExperimentConfig | None = None,
    run_root: Path | None = None,
    references: bool = False,
    weights: Path | None = None,
    target_step: float | None = None,
    target_size: float | None = None,
    targets: list[str] | None = None,
) -> FitResult:
    """Read a measurement table (or a run's references), fit the law, write the fit JSON to ``dest``.

    Args:
        source: the table (from :func:`resolve_input`).
        dest: the fit JSON to write.
        lc: law settings.
        cfg: the experiment, when known (its ``law.aggregate_weights``, else the run's held-out
            token counts, weigh the overall loss).
        run_root: the run directory the table belongs to, if any.
        references: fit the run's trained references (``source`` is its ``validation.json``).
        weights: a JSON ``{validation domain: weight}`` of the overall loss (wins over ``cfg``).
        target_step, target_size: fit the losses extrapolated to this step / model size (nested
            laws; default ``lc.target_step`` / ``lc.target_size``).
        targets: fit only these ``loss:`` columns (``--targets``; default all).

    Raises:
        DataError: an unreadable table or weights file, naming the row and column.
        DemixError: a ``targets`` name the table does not have.
        StageError: the run has not written the references.
    """
    from demix.run import RunDir  # imported here: `import demix.law` stays light

    run = RunDir(run_root) if run_root is not None else None
    if references and run is None:
        raise ValueError("references are read from a run directory: give run_root")
    table = read_references(run) if references and run is not None else read_table(source)
    table = table.select(targets)
    ext = at_target(
        table.R,
        table.L,
        table.step,
        table.size,
        target_step=target_step if target_step is not None else lc.target_step,
        target_size=target_size if target_size is not None else lc.target_size,
        delta=lc.huber_delta,
    )
    targets, L, overall = split_overall(table.targets, ext.L)  # L (n, V); overall (n,) or None
    agg = read_loss_weights(weights, targets)
    note = None
    if overall is not None:
        # loss:overall measured: given weights (--weights, law.aggregate_weights) or learned ones.
        if agg is None and cfg is not None and cfg.law.aggregate_weights:
            agg = aggregate_weights(cfg, run, targets)
        law = fit_with_overall(ext.R, L, overall, lc, domains=table.domains, targets=targets, aggregate=agg)
        how = law.info["aggregate"]
        mae = how.get("measured_mae")
        gap = f" (measured losses so weighted miss it by {mae:.4f} on average)" if mae is not None else ""
        note = f"{how['source']}{gap}"
    else:
        if agg is None and cfg is not None:
            agg = aggregate_weights(cfg, run, targets)
        law = fit(ext.R, L, lc, domains=table.domains, targets=targets, aggregate=agg)
    inputs = {"table": hash_file(source), "law": hash_json(lc.model_dump(mode="json"))}
    extra = {
        "source": str(source),
        "nested": {"target_step": ext.step, "target_size": ext.size, "step_curves": ext.curves},
        "mixtures_fitted": len(ext.R),
        "rows_rescaled": table.n_rescaled,
        "provenance": provenance(inputs),
    }
    save_fit(law, dest, extra)
    measured = L if L.shape[1] or overall is None else overall[:, None]
    fit_error = float(np.nanmean(np.abs(law.predict(ext.R) - measured)))
    return FitResult(law, dest, len(ext.R), fit_error, note, table.n_rescaled)
