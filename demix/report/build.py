"""``demix report``: one self-contained HTML page (images as base64 PNG) and the same as markdown.

The run's products are read once into a :class:`~demix.report.summary.RunSummary`; sections are
built from it once as :class:`~demix.report.section.Section` (text, tables, figures) and rendered
twice by :mod:`demix.report.render`: HTML with embedded images, markdown linking
``report/plots/*.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.mixture import weights_to_ratios
from demix.report import plots
from demix.report.compare import compare_sections
from demix.report.law import law_sections
from demix.report.render import render_html, render_markdown
from demix.report.section import Section
from demix.report.summary import RunSummary, summarize
from demix.run import RunDir
from demix.util.io import atomic_path, write_text_atomic
from demix.util.provenance import provenance


def _f(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _mixture_section(s: RunSummary) -> Section:
    rec, doc = s.recommendation, s.exported
    d = rec.domains
    c = rec.chosen
    sec = Section("Recommended mixture")
    sec.text(
        f"Chosen by **{rec.choice}** (export.choose) from {rec.n_trials} completed trials. These are **data "
        f"ratios r**, what to train on; merge weights w stand for r = {rec.beta:g}·{rec.general} + "
        f"{1 - rec.beta:g}·w because components were trained with train.beta={rec.beta:g}."
    )
    rows = []
    for i, n in enumerate(d):
        iv = c.interval[i] if c.interval is not None else None
        row = [n, _f(float(c.r[i])), f"{iv[0]:.3f}–{iv[1]:.3f}" if iv is not None else "—"]
        if doc is not None:
            ep = (doc.get("epochs") or {}).get(n)
            row += [f"{doc['tokens'][n]:,}", _f(ep, 2) if ep is not None else "—"]
        row.append(_f(float(c.w[i])) if c.w is not None else "—")
        rows.append(row)
    head = ["source", "ratio r", "95% bootstrap interval"]
    if doc is not None:
        head += [f"tokens ({doc['target_tokens']:,} target)", "epochs"]
        sec.text(
            f"Files for the data team: `{s.export_dir}` (JSON, YAML, CSV, Megatron blend, HF snippet, summary)."
        )
    sec.table([*head, "merge weight w"], rows)
    counts = s.token_counts
    prior_r = (
        weights_to_ratios(counts / counts.sum(), d, rec.general, rec.beta)
        if counts is not None
        else c.r * np.nan
    )
    sec.figure(
        "mixture",
        plots.mixture(d, rec.candidates, rec.choice, prior_r),
        "Candidates vs the token-count prior",
    )
    warnings = list(dict.fromkeys([*rec.warnings, *((doc or {}).get("warnings") or [])]))
    if warnings:
        sec.text("**Warnings**")
        sec.bullets(warnings)
    return sec


def _candidates_section(s: RunSummary) -> Section:
    rec = s.recommendation
    sec = Section("Three recommendations side by side")
    sec.text(
        "surrogate_topk: DeMix's mean of the surrogate's top-k predicted mixtures; best_trial: the best "
        "proxy measured; law: the optimum of the data-mixing law. Predictions: surrogate objective "
        "(higher is better), law loss (bits per byte, lower is better)."
    )
    rows = []
    for name, c in rec.candidates.items():
        p = c.predicted
        rows.append(
            [
                name + (" ✓" if name == rec.choice else ""),
                _f(p.get("surrogate_objective")),
                _f(p.get("measured_objective")),
                _f(p.get("law_loss")),
                ", ".join(f"{d} {v:.3f}" for d, v in zip(rec.domains, c.r, strict=True)),
                c.note,
            ]
        )
    sec.table(["candidate", "surrogate", "measured", "law loss", "data ratios r", "how"], rows)
    if rec.search_report:
        _report_tasks(sec, rec.search_report)
    if rec.pareto:
        groups = sorted(rec.pareto[0]["objectives"])
        prow = [
            [
                str(p["trial"]),
                *[_f(p["objectives"][g]) for g in groups],
                ", ".join(f"{d} {v:.3f}" for d, v in p["r"].items()),
            ]
            for p in rec.pareto
        ]
        sec.text(f"Pareto set over the groups ({len(rec.pareto)} trials):")
        sec.table(["trial", *groups, "data ratios r"], prow)
    return sec


def _report_tasks(sec: Section, search_report: dict[str, Any]) -> None:
    """The search's top-k and the baselines scored on the held-out report tasks."""
    rep = [
        [
            n,
            _f(v.get("objective")),
            ", ".join(f"{g} {x:.3f}" for g, x in (v.get("objectives") or {}).items()),
        ]
        for n, v in search_report.items()
    ]
    sec.text("Scored on the held-out report tasks (never optimised on), against the baselines:")
    sec.table(["mixture", "report objective", "per group"], rep)
    tasks = sorted({t for v in search_report.values() for t in v.get("metrics") or {}})
    if not tasks:
        return
    uncounted = {t for v in search_report.values() for t, w in (v.get("weights") or {}).items() if w == 0}
    sec.text(
        "The report tasks' own values (base_model: the model the components were trained from"
        + ("; * not optimised and not counted in the report objective" if uncounted else "")
        + "):"
    )
    sec.table(
        ["mixture", *[t + (" *" if t in uncounted else "") for t in tasks]],
        [[n, *[_f((v.get("metrics") or {}).get(t)) for t in tasks]] for n, v in search_report.items()],
    )


def _search_section(s: RunSummary) -> Section:
    table = s.trials
    sec = Section("Search")
    searched = int(np.sum(table.baseline == ""))
    sec.text(
        f"{searched} search trials and {len(table) - searched} baselines; objective normalised to the baselines."
    )
    sec.figure("history", plots.history(table), "Objective per trial")
    png, method = plots.importances(table)
    sec.figure("importance", png, f"Merge-weight importances ({method})")
    sec.figure("groups", plots.groups(table), "Per-group objectives of the top trials")
    return sec


def interval_text(e: dict[str, float]) -> str:
    """``0.81 [0.70, 0.90]``; ``—`` for undefined values (NaN, as JSON writes it)."""

    def f(x: float | None) -> str:
        return "—" if x is None or not np.isfinite(float(x)) else f"{float(x):.2f}"

    return f"{f(e.get('value'))} [{f(e.get('low'))}, {f(e.get('high'))}]"


def _validation_section(s: RunSummary) -> Section | None:
    v = s.validation
    if v is None:
        return None
    fid = v["fidelity"]
    sec = Section("Validation against trained references")
    sec.text(
        f"{v['n']} mixtures, each trained for real ({v['reference_tokens']:,} tokens from the base) and merged "
        f"as a proxy; top quarter k={fid['k_top']}. Intervals: 95% bootstrap over mixtures."
    )
    rows = [
        [g, *(interval_text(fid[m][g]) for m in ("spearman", "top_spearman", "recovery"))]
        for g in fid["spearman"]
    ]
    sec.text("— : undefined (a group whose scores are all tied has no ranking).")
    sec.table(["group", "Spearman", "top-quarter Spearman", "capability recovery"], rows)
    sec.figure(
        "proxy_vs_reference",
        plots.proxy_vs_reference(fid["group_scores"], fid["spearman"]),
        "Proxy vs reference",
    )
    return sec


def build_sections(s: RunSummary) -> list[Section]:
    """The report's sections in order; the law, validation and comparison ones only when those ran."""
    out = [_mixture_section(s), _candidates_section(s), _search_section(s)]
    out += law_sections(s)
    val = _validation_section(s)
    if val is not None:
        out.append(val)
    return out + compare_sections(s.root)


def report(cfg: ExperimentConfig, run: RunDir) -> Path:
    """Write ``report/report.html`` (self-contained), ``report/report.md`` and ``report/plots/*.png``.

    Raises:
        StageError: the search has not run or is unfinished.
    """
    summary = summarize(cfg, run)
    sections = build_sections(summary)
    prov = provenance()
    meta = f"demix {prov['demix_version']} · commit {prov['git_commit'] or 'unknown'} · {time.strftime('%Y-%m-%d %H:%M')} · run {summary.root}"
    title = f"demix report: {summary.name}"
    for sec in sections:
        for stem, png, _ in sec.figures:
            with atomic_path(run.report / "plots" / f"{stem}.png") as tmp:
                tmp.write_bytes(png)
    write_text_atomic(run.report / "report.md", render_markdown(title, sections, meta))
    out = run.report / "report.html"
    write_text_atomic(out, render_html(title, sections, meta))
    return out
