"""The report's "Methods compared" section, from ``compare/compare.json`` (``demix compare``).

Shown only when the comparison ran: the table (method, r per source, cost, trained score with its
interval, rank), the trained scores as bars with their intervals, the winner's lead over each method
with its paired interval, the mixtures as stacked bars,
and DoReMi's weight trajectory (its proxy's ``domain_weights.jsonl``) when DoReMi was compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from demix.report.plots import _plt, _png
from demix.report.section import Section


def _fmt(x: float) -> str:
    return "—" if x is None or not np.isfinite(float(x)) else f"{float(x):.3f}"


def score_bars(doc: dict[str, Any]) -> bytes:
    """Trained score per method, best first, with its 95% interval."""
    plt = _plt()
    rows = sorted(doc["methods"].items(), key=lambda kv: kv[1]["rank"])
    v = np.array([r["trained"]["value"] for _, r in rows], dtype=np.float64)
    lo = np.array([r["trained"]["low"] for _, r in rows], dtype=np.float64)
    hi = np.array([r["trained"]["high"] for _, r in rows], dtype=np.float64)
    err = np.nan_to_num(np.vstack([v - lo, hi - v]), nan=0.0).clip(min=0)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar([m for m, _ in rows], v, yerr=err, capsize=3, color="#1f77b4")
    ax.set_ylabel("trained score (95% interval)")
    ax.tick_params(axis="x", rotation=30)
    return _png(fig)


def lead_bars(doc: dict[str, Any]) -> bytes | None:
    """The best method's lead over each other one with its paired 95% interval (None without one):
    the scores' own intervals are wide because documents vary; the paired one resamples the same
    documents for every model, so it shows whether the lead is more than evaluation noise."""
    lead = doc.get("lead") or {}
    vs = {m: d for m, d in (lead.get("vs") or {}).items() if np.isfinite(d["low"]) and np.isfinite(d["high"])}
    if not vs:
        return None
    plt = _plt()
    names = sorted(vs, key=lambda m: vs[m]["diff"])
    d = np.array([vs[m]["diff"] for m in names])
    err = np.vstack([d - [vs[m]["low"] for m in names], [vs[m]["high"] for m in names] - d]).clip(min=0)
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh(
        names, d, xerr=err, capsize=3, color=["#2ca02c" if vs[m]["low"] > 0 else "#bbbbbb" for m in names]
    )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"{lead['best']}'s lead in trained score (paired 95% interval)")
    return _png(fig)


def mixture_bars(doc: dict[str, Any]) -> bytes:
    """Each method's data mixture r as one stacked bar."""
    plt = _plt()
    methods, domains = list(doc["methods"]), doc["domains"]
    fig, ax = plt.subplots(figsize=(6, 3))
    bottom = np.zeros(len(methods))
    for d in domains:
        r = np.array([doc["methods"][m]["r"][d] for m in methods], dtype=np.float64)
        ax.bar(methods, r, bottom=bottom, label=d)
        bottom += r
    ax.set_ylabel("data ratio r")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _png(fig)


def doremi_trajectory(path: Path) -> bytes | None:
    """DoReMi's domain weights per step (None when the proxy's log is missing)."""
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    steps = [r["step"] for r in rows]
    for d in rows[0]["weights"]:
        ax.plot(steps, [r["weights"].get(d, np.nan) for r in rows], label=d)
    ax.set_xlabel("step")
    ax.set_ylabel("domain weight")
    ax.legend(fontsize=7)
    return _png(fig)


def compare_sections(root: Path) -> list[Section]:
    """The section, or nothing when ``compare/compare.json`` is not in the run."""
    path = Path(root) / "compare" / "compare.json"
    if not path.is_file():
        return []
    doc = json.loads(path.read_text())
    domains = doc["domains"]
    sec = Section("Methods compared")
    sec.text(
        f"Each method's data mixture r trained from the base on {doc['check']['tokens']:,} tokens and scored on "
        f"the report tasks ({doc['scale']}). Cost: tokens trained to get the answer, FLOPs = 6·P·tokens, wall "
        f"seconds; {doc['cost_note']}. Best trained: **{doc['best']}**. " + doc.get("verdict", "")
    )
    rows = []
    for m, row in sorted(doc["methods"].items(), key=lambda kv: kv[1]["rank"]):
        t, c = row["trained"], row["cost"]
        cost = [f"{c['tokens']:,}", f"{c['flops']:.3g}", f"{c['seconds']:.1f}"]
        score = f"{_fmt(t['value'])} [{_fmt(t['low'])}, {_fmt(t['high'])}]"
        rows.append([m, *[f"{row['r'][d]:.3f}" for d in domains], *cost, score, f"{row['rank']:g}"])
    sec.table(["method", *domains, "tokens", "FLOPs", "seconds", "trained score [95%]", "rank"], rows)
    order = [
        f"{p}: Spearman {_fmt(o['spearman'])} with the trained order; "
        f"{'the same' if o['same_order'] else 'not the same'} order (predicted best {o['predicted_best']})"
        for p, o in doc.get("order", {}).items()
        if o.get("same_order") is not None
    ]
    sec.bullets(order)
    sec.figure("compare_scores", score_bars(doc), "Trained score per method, with 95% intervals")
    leads = lead_bars(doc)
    if leads is not None:
        sec.figure(
            "compare_lead", leads, f"{doc['lead']['best']}'s lead over each method (green: beyond the noise)"
        )
    sec.figure("compare_mixtures", mixture_bars(doc), "Each method's data mixture")
    proxy = doc["methods"].get("doremi", {}).get("proxy_dir")
    png = doremi_trajectory(Path(proxy) / "domain_weights.jsonl") if proxy else None
    if png is not None:
        sec.figure("compare_doremi", png, "DoReMi's domain weights during its proxy's training")
    return [sec]
