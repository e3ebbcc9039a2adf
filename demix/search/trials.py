"""``search/trials.csv`` (one row per finished trial, as ../DESIGN.md defines it) and ``--show``.

Columns: ``trial``, ``state``, ``baseline`` (its name, empty for search trials), ``w:<d>`` merge
weights, ``mix:<d>`` data ratios r, ``loss:<d>`` held-out bits per byte per domain, ``metric:<task>``
one per task metric, ``objective`` and ``objective:<group>``, ``merge_s``, ``eval_s``. Domain
columns follow the manifest's canonical order. The file is rewritten atomically as trials finish.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demix.util.io import write_text_atomic

if TYPE_CHECKING:
    import optuna


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def trials_table(trials: Sequence[optuna.trial.FrozenTrial], domains: Sequence[str]) -> list[dict[str, Any]]:
    """Finished trials as rows keyed by the trials.csv column names."""
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        if not t.state.is_finished():
            continue
        a = t.user_attrs
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name, "baseline": a.get("baseline", "")}
        for key, col in (("w", "w"), ("r", "mix")):
            vals = a.get(key) or [None] * len(domains)
            row.update({f"{col}:{d}": v for d, v in zip(domains, vals, strict=True)})
        row.update({f"loss:{d}": a.get("bpb", {}).get(d) for d in domains})
        row.update({f"metric:{k}": v for k, v in sorted(a.get("metrics", {}).items())})
        row["objective"] = a.get("objective")
        row.update({f"objective:{g}": v for g, v in sorted(a.get("objectives", {}).items())})
        row["merge_s"] = a.get("merge_s")
        row["eval_s"] = a.get("eval_s")
        rows.append(row)
    return rows


def render_csv(rows: list[dict[str, Any]]) -> str:
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    fixed = [c for c in cols if not c.startswith(("metric:", "objective", "merge_s", "eval_s"))]
    metric = sorted(c for c in cols if c.startswith("metric:"))
    objective = ["objective", *sorted(c for c in cols if c.startswith("objective:"))]
    header = fixed + metric + objective + ["merge_s", "eval_s"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({c: _fmt(row.get(c)) for c in header})
    return buf.getvalue()


def write_trials_csv(study: optuna.Study, path: Path, domains: Sequence[str]) -> None:
    write_text_atomic(path, render_csv(trials_table(study.get_trials(deepcopy=False), domains)))


def best_table(study: optuna.Study, domains: Sequence[str], top: int = 10) -> str:
    """The best trials (the Pareto front in groups mode) as a fixed-width text table."""
    import optuna

    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return "no completed trials yet"
    if len(study.directions) > 1:
        best = sorted(study.best_trials, key=lambda t: -float(t.user_attrs.get("objective", 0.0)))
        title = f"Pareto front: {len(best)} of {len(done)} completed trials"
    else:
        best = sorted(done, key=lambda t: -float(t.value if t.value is not None else float("-inf")))
        title = f"best {min(top, len(best))} of {len(done)} completed trials (objective: higher is better)"
    groups = sorted({g for t in best for g in t.user_attrs.get("objectives", {})})
    head = ["trial", "objective", *groups, *[f"mix:{d}" for d in domains], "baseline"]
    lines = []
    for t in best[:top]:
        a = t.user_attrs
        r = a.get("r") or [float("nan")] * len(domains)
        cells = [str(t.number), f"{a.get('objective', float('nan')):.4f}"]
        cells += [f"{a.get('objectives', {}).get(g, float('nan')):.4f}" for g in groups]
        cells += [f"{v:.3f}" for v in r] + [a.get("baseline", "")]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    out = [title, "  ".join(h.rjust(n) for h, n in zip(head, widths, strict=True))]
    out += ["  ".join(c.rjust(n) for c, n in zip(cells, widths, strict=True)) for cells in lines]
    return "\n".join(out)
