"""``demix law check RUN``: the mixing law as an independent cross-check of the search.

Fit the law on part of the trials and predict the rest (MAE, relative error, Spearman), over
``law.check_splits`` random splits; fit it on all trials; find its optimum under the search's
constraints; and compare that with the search's recommendation (``search/recommendation.json``).
An L1 distance between the two mixtures beyond ``law.disagreement_tolerance`` is flagged: two
independent models of the same measurements disagree about where the best mixture is.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import StageError
from demix.law.io import LawTable, aggregate_weights, read_table, save_fit
from demix.law.mixing import MixingLaw, fit
from demix.law.optimize import bounds_for, optimize
from demix.mixture import as_dict, from_mapping
from demix.util.hashing import hash_file, hash_json
from demix.util.io import read_json, write_json_atomic
from demix.util.provenance import provenance
from demix.util.stats import spearman

if TYPE_CHECKING:
    from demix.config import ExperimentConfig
    from demix.config.law import LawConfig
    from demix.run import RunDir


def holdout_errors(
    table: LawTable, cfg: LawConfig, weights: np.ndarray, *, splits: int, holdout: float | int
) -> dict[str, Any]:
    """Fit on a random part of the rows, predict the rest, for several seeded splits.

    Args:
        table: measurements (rows with any missing loss are left out).
        cfg: law settings (seed: split k uses seed + k).
        weights: (V,) aggregation weights of the overall loss.
        splits: number of random splits.
        holdout: fraction (< 1) or number of rows held out per split.

    Returns:
        Per-split and mean MAE / relative error / Spearman of the overall and per-domain losses,
        and the held-out points (measured, predicted, domain) for a plot.
    """
    ok = np.flatnonzero(np.isfinite(table.L).all(axis=1))
    n = ok.size
    n_out = int(holdout) if holdout >= 1 else max(1, math.ceil(float(holdout) * n))
    if n - n_out < 3:
        raise StageError(f"{n} complete rows: too few to fit the law on {n - n_out} and hold out {n_out}")
    per_split, points = [], []
    for k in range(splits):
        perm = np.random.default_rng(cfg.seed + k).permutation(ok)
        tr, te = perm[n_out:], perm[:n_out]
        law = fit(
            table.R[tr], table.L[tr], cfg, domains=table.domains, targets=table.targets, aggregate=weights
        )
        P = law.predict(table.R[te])
        agg_p, agg_m = P @ weights, table.L[te] @ weights
        per_split.append(
            {
                "fit_rows": table.rows[tr].tolist(),
                "held_out_rows": table.rows[te].tolist(),
                "mae": float(np.mean(np.abs(agg_p - agg_m))),
                "relative_error": float(np.mean(np.abs(agg_p - agg_m) / np.abs(agg_m))),
                "spearman": spearman(agg_p, agg_m),
                "mae_per_domain": float(np.mean(np.abs(P - table.L[te]))),
                "spearman_per_domain": {
                    t: spearman(P[:, i], table.L[te, i]) for i, t in enumerate(table.targets)
                },
            }
        )
        for j, row in enumerate(te):
            points += [
                {"split": k, "row": int(table.rows[row]), "domain": t,
                 "measured": float(table.L[row, i]), "predicted": float(P[j, i])}
                for i, t in enumerate(table.targets)
            ]  # fmt: skip
    mean = {
        key: float(np.nanmean([s[key] for s in per_split]))
        for key in ("mae", "relative_error", "spearman", "mae_per_domain")
    }
    return {"held_out": n_out, "fit_on": n - n_out, "splits": per_split, "mean": mean, "points": points}


def _recommendation(run: RunDir, domains: list[str]) -> tuple[np.ndarray | None, str]:
    path = run.search / "recommendation.json"
    if not path.is_file():
        return None, ""
    doc = read_json(path)
    r = doc.get("r")
    if not isinstance(r, dict) or set(r) != set(domains):
        return None, hash_file(path)
    return from_mapping(r, domains), hash_file(path)


def _token_counts(run: RunDir, domains: list[str]) -> np.ndarray | None:
    if not run.manifest.is_file():
        return None
    from demix.data.manifest import Manifest

    m = Manifest.load(run)
    counts = dict(zip(m.names, m.token_counts("train"), strict=True))
    return np.array([counts[d] for d in domains]) if all(d in counts for d in domains) else None


def objective_weights(run: RunDir, targets: list[str]) -> np.ndarray | None:
    """Loss weights s under which the law's overall loss Σ s_d L_d ranks mixtures as the search does.

    When every task of the search objective is a per-domain bits-per-byte task
    (``evaluate.builtin.bpb_objective``), the objective is affine in those losses: each task is
    normalised between its worst and best frozen baseline, averaged with its weight inside its group,
    and groups are averaged. So s_d = weight / group weight / groups / baseline range, and the
    law's optimum is directly comparable with the search's. ``None`` when the objective has other
    tasks (then the law's overall loss is a different quantity, and the check says so).
    """
    if not run.baselines.is_file():
        return None
    baselines = read_json(run.baselines).get("baselines", {})
    scores = [b["score"]["metrics"] for b in baselines.values() if "score" in b]
    if not scores:
        return None
    from demix.evaluate.spec import bpb_task_name

    by_name = {bpb_task_name(t): i for i, t in enumerate(targets)}
    tasks = scores[0]
    if not tasks or any(name not in by_name for name in tasks):
        return None
    group_weight: dict[str, float] = {}
    for m in tasks.values():
        group_weight[m["group"]] = group_weight.get(m["group"], 0.0) + float(m.get("weight", 1.0))
    s = np.zeros(len(targets))
    for name, m in tasks.items():
        values = [float(sc[name]["value"]) for sc in scores if name in sc]
        spread = max(values) - min(values)
        if spread > 0 and group_weight[m["group"]] > 0:
            s[by_name[name]] += (
                float(m.get("weight", 1.0)) / group_weight[m["group"]] / len(group_weight) / spread
            )
    return s / s.sum() if s.sum() > 0 else None


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
    s_objective = None if lc.aggregate_weights else objective_weights(run, table.targets)
    s = s_objective if s_objective is not None else aggregate_weights(cfg, run, table.targets)
    aggregate_source = (
        "the search objective (bits per byte weighted as the objective weighs them)"
        if s_objective is not None
        else "law.aggregate_weights"
        if lc.aggregate_weights
        else "held-out token counts (the search objective is not a function of these losses alone)"
    )
    errors = holdout_errors(table, lc, s, splits=lc.check_splits, holdout=lc.holdout_fraction)
    ok = np.isfinite(table.L).all(axis=1)
    law: MixingLaw = fit(
        table.R[ok], table.L[ok], lc, domains=table.domains, targets=table.targets, aggregate=s
    )
    inputs = {"trials": hash_file(run.trials_csv), "law": hash_json(lc.model_dump(mode="json"))}
    save_fit(law, run.law / "fit.json", {"source": str(run.trials_csv), "provenance": provenance(inputs)})
    counts = _token_counts(run, table.domains)
    bounds = bounds_for(cfg, table.domains, counts)
    free = optimize(law, bounds, starts=lc.optimize_starts, seed=lc.seed)
    # Proxies only cover mixtures with at least beta general data, so the law is fitted there and
    # its optimum is compared with the search's inside that region; the optimum outside it is
    # reported too, as an extrapolation.
    opt = free
    if cfg.general in table.domains and cfg.train.beta > 0:
        g = table.domains.index(cfg.general)
        reach = dataclasses.replace(bounds, lo=bounds.lo.copy())
        reach.lo[g] = max(reach.lo[g], cfg.train.beta)
        if reach.lo.sum() <= 1.0 + 1e-9 and reach.lo[g] <= reach.hi[g]:
            opt = optimize(law, reach, starts=lc.optimize_starts, seed=lc.seed)
    rec, rec_hash = _recommendation(run, table.domains)
    comparison: dict[str, Any] = {"available": rec is not None}
    verdict = "no search recommendation to compare with (search/recommendation.json)"
    if rec is not None:
        l1 = float(np.abs(opt.r - rec).sum())
        rec_loss = float(law.predict_aggregate(rec)[0])
        disagree = l1 > lc.disagreement_tolerance
        comparison |= {
            "search_r": as_dict(rec, table.domains),
            "l1_distance": l1,
            "tolerance": lc.disagreement_tolerance,
            "disagree": disagree,
            "law_loss_at_search": rec_loss,
            "law_loss_at_optimum": opt.loss,
        }
        inputs["recommendation"] = rec_hash
        verdict = (
            f"DISAGREE: the law optimum is {l1:.3f} (L1) from the search's recommendation, beyond the "
            f"tolerance {lc.disagreement_tolerance:g}; the law predicts {rec_loss:.4f} there vs {opt.loss:.4f}"
            if disagree
            else f"agree: the law optimum is {l1:.3f} (L1) from the search's recommendation "
            f"(tolerance {lc.disagreement_tolerance:g})"
        )
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
