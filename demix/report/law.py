"""The report's law section: predicted vs measured losses (``law/check.json``) and t_ij (``law/fit.json``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from demix.report import plots
from demix.report.section import Section
from demix.report.summary import RunSummary


def _pairs(check: dict[str, Any]) -> tuple[list[float], list[float], list[str]]:
    """(measured, predicted, domain) of the held-out trials the law check predicted."""
    measured: list[float] = []
    predicted: list[float] = []
    labels: list[str] = []
    for p in check.get("points") or []:
        measured.append(float(p["measured"]))
        predicted.append(float(p["predicted"]))
        labels.append(str(p.get("domain", "loss")))
    return measured, predicted, labels


def _check_blocks(sec: Section, check: dict[str, Any]) -> None:
    """The held-out check: a predicted-vs-measured figure and the check's own sentences."""
    weights = check.get("aggregate_weights")
    if isinstance(weights, dict) and weights and check.get("aggregate_source"):
        shown = ", ".join(f"{d} {float(x):.2f}" for d, x in weights.items())
        sec.text(
            f"The law's overall loss (its optimum and the check's errors) weighs the per-domain bits per "
            f"byte {shown}: {check['aggregate_source']}."
        )
    m, p, lab = _pairs(check)
    if m:
        sec.figure(
            "law_check",
            plots.predicted_vs_measured(np.array(m), np.array(p), lab, "held-out trials: bits per byte"),
            "Law: predicted vs measured on held-out trials",
        )
    for key in ("summary", "verdict", "message"):
        if isinstance(check.get(key), str):
            sec.text(check[key])


def _interaction_figure(sec: Section, fit: dict[str, Any], domains: list[str]) -> None:
    """The fitted t_ij as a heatmap, when the fit has one (of the heaviest form, for an ensemble)."""
    t = fit.get("t")
    if t is None:
        return
    names = list(fit.get("domains") or domains)
    rows = list(fit.get("targets") or names)
    p = float(fit.get("exponent", 1.0))
    form = "r_j" if p == 1.0 else f"r_j^{p:g}"
    sec.figure(
        "law_t",
        plots.interaction_matrix(
            np.array(t, dtype=np.float64).reshape(len(rows), len(names)),
            rows,
            names,
            f"t_ij of exp(sum_j t_ij {form}); negative: a larger share of j lowers the loss on i",
        ),
        f"Law interaction matrix t_ij (form {form})",
    )


def combine_sentence(fit: dict[str, Any]) -> str | None:
    """What the law's default was: one form selected, or an ensemble of forms with their weights."""
    comb = fit.get("combine")
    if not isinstance(comb, dict):
        return None
    w = comb.get("weights") or {}
    if comb.get("method") == "ensemble" and len(w) > 1:
        parts = ", ".join(f"p={q} weight {float(x):.2f}" for q, x in w.items())
        return (
            f"Law form: an ensemble (law.combine=ensemble) of the forms r^p ({parts}), weights "
            f"proportional to (cross-validated MAE)^-{comb.get('power', 2):g}: the form that ranks best within one model "
            "size need not rank best at a larger one; in the 19 cross-size cases measured the weighted "
            "mean was within 0.0025 Spearman of the better form (docs/perf/law.md)."
        )
    return f"Law form: one form, p={fit.get('exponent', 1.0)} (law.combine=select or a single exponent)."


def law_sections(s: RunSummary) -> list[Section]:
    """The law section when the law stage ran, else nothing."""
    if s.law_check is None and s.law_fit is None:
        return []
    from demix.law.mixing import exponent_note

    sec = Section("Data-mixing law cross-check")
    fit: dict[str, Any] = s.law_fit if s.law_fit is not None else {}
    law = fit.get("law") or "L_i(r) = c_i + k_i * exp(sum_j t_ij r_j)"
    sec.text(f"{law} fitted to the trials' per-domain bits per byte (Ye et al., 2025).")
    note = exponent_note(float(fit.get("exponent", 1.0)), fit.get("info") or {})
    if note:
        sec.text(f"Exponent: {note}.")
    combined = combine_sentence(fit)
    if combined:
        sec.text(combined)
    if s.law_check is not None:
        _check_blocks(sec, s.law_check)
    if fit:
        _interaction_figure(sec, fit, s.recommendation.domains)
    return [sec]
