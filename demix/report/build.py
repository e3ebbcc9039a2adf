"""``demix report``: one self-contained HTML page (images as base64 PNG) and the same as markdown.

Sections are built once as :class:`Section` (text, tables, figures) and rendered twice: HTML with
embedded images, markdown linking ``report/plots/*.png``. Everything comes from the run directory:
trials, recommendation, export, law check/fit and validation when those stages ran.
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.mixture import weights_to_ratios
from demix.recommend.build import Recommendation, recommend
from demix.recommend.table import TrialsTable, load_trials
from demix.report import plots
from demix.report.law import law_sections
from demix.run import RunDir
from demix.util.io import atomic_path, read_json, write_text_atomic
from demix.util.provenance import provenance


@dataclass
class Section:
    """A part of the report: a title and blocks in order (paragraphs, tables, figures, bullet lists).

    Blocks are ``("text", str)``, ``("table", (header, rows))``, ``("figure", (file stem, png,
    caption))`` or ``("list", [str, ...])``.
    """

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def text(self, t: str) -> None:
        self.blocks.append(("text", t))

    def table(self, head: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (head, rows)))

    def figure(self, stem: str, png: bytes, caption: str) -> None:
        self.blocks.append(("figure", (stem, png, caption)))

    def bullets(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("list", list(items)))

    @property
    def figures(self) -> list[tuple[str, bytes, str]]:
        return [b for k, b in self.blocks if k == "figure"]


def _f(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _mixture_section(cfg: ExperimentConfig, run: RunDir, rec: Recommendation, table: TrialsTable) -> Section:
    d = rec.domains
    c = rec.chosen
    sec = Section("Recommended mixture")
    sec.text(
        f"Chosen by **{rec.choice}** (export.choose) from {rec.n_trials} completed trials. These are **data "
        f"ratios r**, what to train on; merge weights w stand for r = {rec.beta:g}·{rec.general} + "
        f"{1 - rec.beta:g}·w because components were trained with train.beta={rec.beta:g}."
    )
    exported = run.export / "recommended_mixture.json"
    doc = read_json(exported) if exported.is_file() else None
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
            f"Files for the data team: `{run.export}` (JSON, YAML, CSV, Megatron blend, HF snippet, summary)."
        )
    sec.table([*head, "merge weight w"], rows)
    counts = _counts(cfg, run, d)
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


def _counts(cfg: ExperimentConfig, run: RunDir, domains: list[str]) -> np.ndarray | None:
    from demix.export.stage import available_tokens

    avail, _ = available_tokens(cfg, run, domains)
    return avail


def _candidates_section(rec: Recommendation) -> Section:
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
        rep = [
            [
                n,
                _f(v.get("objective")),
                ", ".join(f"{g} {x:.3f}" for g, x in (v.get("objectives") or {}).items()),
            ]
            for n, v in rec.search_report.items()
        ]
        sec.text("Scored on the held-out report tasks (never optimised on), against the baselines:")
        sec.table(["mixture", "report objective", "per group"], rep)
        tasks = sorted({t for v in rec.search_report.values() for t in v.get("metrics") or {}})
        if tasks:
            uncounted = {
                t for v in rec.search_report.values() for t, w in (v.get("weights") or {}).items() if w == 0
            }
            sec.text(
                "The report tasks' own values (base_model: the model the components were trained from"
                + ("; * not optimised and not counted in the report objective" if uncounted else "")
                + "):"
            )
            sec.table(
                ["mixture", *[t + (" *" if t in uncounted else "") for t in tasks]],
                [
                    [n, *[_f((v.get("metrics") or {}).get(t)) for t in tasks]]
                    for n, v in rec.search_report.items()
                ],
            )
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


def _search_section(table: TrialsTable) -> Section:
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


def _validation_section(run: RunDir) -> Section | None:
    path = run.validation / "validation.json"
    if not path.is_file():
        return None
    v = read_json(path)
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


def build_sections(cfg: ExperimentConfig, run: RunDir) -> list[Section]:
    rec = recommend(cfg, run)
    table = load_trials(run.trials_csv).complete()
    out = [_mixture_section(cfg, run, rec, table), _candidates_section(rec), _search_section(table)]
    out += law_sections(run, rec.domains)
    val = _validation_section(run)
    if val is not None:
        out.append(val)
    return out


def _md_inline(text: str) -> str:
    """Escape HTML, then turn **bold** and `code` into tags (the only markdown the report uses)."""
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f5f5f5}figure{margin:10px 0}figcaption{font-size:12px;color:#555}img{max-width:100%}
code{background:#f3f3f3;padding:0 3px}.meta{color:#666;font-size:12px}"""


def render_html(title: str, sections: list[Section], meta: str) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        for kind, b in s.blocks:
            if kind == "text":
                parts.append(f"<p>{_md_inline(b)}</p>")
            elif kind == "list":
                parts.append("<ul>" + "".join(f"<li>{_md_inline(x)}</li>" for x in b) + "</ul>")
            elif kind == "table":
                head, rows = b
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
                parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
                parts.append("</table>")
            else:
                _, png, cap = b
                b64 = base64.b64encode(png).decode()
                parts.append(
                    f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{b64}'>"
                    f"<figcaption>{html.escape(cap)}</figcaption></figure>"
                )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(title: str, sections: list[Section], meta: str) -> str:
    lines = [f"# {title}", "", f"_{meta}_", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for kind, b in s.blocks:
            if kind == "text":
                lines += [b, ""]
            elif kind == "list":
                lines += [*(f"- {x}" for x in b), ""]
            elif kind == "table":
                head, rows = b
                lines.append("| " + " | ".join(head) + " |")
                lines.append("|" + "---|" * len(head))
                lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
                lines.append("")
            else:
                stem, _, cap = b
                lines += [f"![{cap}](plots/{stem}.png)", ""]
    return "\n".join(lines)


def report(cfg: ExperimentConfig, run: RunDir) -> Path:
    """Write ``report/report.html`` (self-contained), ``report/report.md`` and ``report/plots/*.png``.

    Raises:
        StageError: the search has not run or is unfinished.
    """
    sections = build_sections(cfg, run)
    prov = provenance()
    meta = f"demix {prov['demix_version']} · commit {prov['git_commit'] or 'unknown'} · {time.strftime('%Y-%m-%d %H:%M')} · run {run.root}"
    title = f"demix report: {cfg.name}"
    for s in sections:
        for stem, png, _ in s.figures:
            with atomic_path(run.report / "plots" / f"{stem}.png") as tmp:
                tmp.write_bytes(png)
    write_text_atomic(run.report / "report.md", render_markdown(title, sections, meta))
    out = run.report / "report.html"
    write_text_atomic(out, render_html(title, sections, meta))
    return out
