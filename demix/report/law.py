"""The report's law section: predicted vs measured losses (``law/check.json``) and t_ij (``law/fit.json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from demix.report import plots
from demix.run import RunDir
from demix.util.io import read_json

if TYPE_CHECKING:
    from demix.report.build import Section


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


def law_sections(run: RunDir, domains: list[str]) -> list[Section]:
    """The law section when the law stage ran, else nothing."""
    from demix.report.build import Section

    check_p, fit_p = run.law / "check.json", run.law / "fit.json"
    if not check_p.is_file() and not fit_p.is_file():
        return []
    sec = Section("Data-mixing law cross-check")
    from demix.law.mixing import exponent_note

    fit: dict[str, Any] = read_json(fit_p) if fit_p.is_file() else {}
    law = fit.get("law") or "L_i(r) = c_i + k_i * exp(sum_j t_ij r_j)"
    sec.text(f"{law} fitted to the trials' per-domain bits per byte (Ye et al., 2025).")
    note = exponent_note(float(fit.get("exponent", 1.0)), fit.get("info") or {})
    if note:
        sec.text(f"Exponent {note}.")
    if check_p.is_file():
        check = read_json(check_p)
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
    if fit:
        t = fit.get("t")
        if t is not None:
            names = list(fit.get("domains") or domains)
            rows = list(fit.get("targets") or names)
            sec.figure(
                "law_t",
                plots.heatmap(
                    np.array(t, dtype=np.float64),
                    rows,
                    names,
                    "t_ij (negative: share of j lowers loss on i)",
                    "t_ij",
                ),
                "Law interaction matrix t_ij",
            )
    return [sec]
