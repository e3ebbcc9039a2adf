"""The law's user files: measurement CSVs, the Data Mixing Laws tidy format, fit JSON, predictions.

A measurement table has one row per run (or checkpoint): ``mix:<train domain>`` data ratios that
sum to 1, ``loss:<validation domain>`` losses (an empty cell: not measured), and optionally
``step`` and ``model_size`` (a number or 70M / 1.4B, see :mod:`demix.util.units`).
``search/trials.csv`` is such a table; rows whose ``state`` is not COMPLETE are skipped. Problems
are reported with the row and column. A run directory's own files are read by :mod:`.stage`.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import DataError, StageError
from demix.law.mixing import MixingLaw
from demix.law.table import LawTable
from demix.util.io import read_json, read_text, write_json_atomic, write_text_atomic
from demix.util.units import parse_quantity

if TYPE_CHECKING:
    from demix.run import RunDir

SUM_TOL = 1e-3  # least tolerance on Σ mix:<d> = 1, whatever the digits written
RESCALED = 1e-9  # a row whose sum misses 1 by more is counted as rescaled (float noise is not)
NAMED = 5  # rows named when proportions do not sum to 1


def _decimals(text: str) -> int:
    """Digits written after the point: 3 for '0.004', 1 for '0.0', 5 for '1e-05'."""
    try:
        e = Decimal(text.strip()).as_tuple().exponent
    except InvalidOperation:
        return 0
    return max(0, -e) if isinstance(e, int) else 0


def sum_tolerance(cells: list[str]) -> float:
    """How far a row of K shares written with d decimals may miss 1 by rounding alone: K · ½·10^-d.

    d is the most decimals of any cell in the row ('0.0' beside '0.004' was rounded to 3 decimals
    too); never less than ``SUM_TOL``. 17 shares with 3 decimals: 0.0085.
    """
    d = max(_decimals(c) for c in cells)
    return max(SUM_TOL, len(cells) * 0.5 * 10.0**-d)


def _check_sums(sums: list[float], tols: list[float], ids: list[int], mix: list[str], path: Path) -> None:
    """Raise naming every row (the first few) whose shares miss 1 by more than their precision allows."""
    bad = [j for j, (s, tol) in enumerate(zip(sums, tols, strict=True)) if abs(s - 1.0) > tol]
    if not bad:
        return
    named = ", ".join(f"row {ids[j]} sums to {sums[j]:.6g} (allowed ±{tols[j]:.2g})" for j in bad[:NAMED])
    more = f", and {len(bad) - NAMED} more" if len(bad) > NAMED else ""
    raise DataError(
        f"{len(bad)} of {len(sums)} rows, columns {mix[0]!r}..{mix[-1]!r}: proportions do not sum to 1 "
        f"within the precision they are written with: {named}{more}",
        path=path,
    )


def _num(text: str, path: Path, row: int, col: str, *, allow_empty: bool) -> float:
    t = text.strip()
    if t == "" and allow_empty:
        return float("nan")
    try:
        v = parse_quantity(t) if col == "model_size" else float(t)
    except ValueError:
        raise DataError(f"row {row}, column {col!r}: {text!r} is not a number", path=path) from None
    if not np.isfinite(v):
        raise DataError(f"row {row}, column {col!r}: {text!r} is not a finite number", path=path)
    return v


def read_table(path: str | Path, *, require_loss: bool = True) -> LawTable:
    """Read a measurement CSV (see module docstring); ``require_loss=False`` for mixtures to predict.

    Shares are rescaled to sum to 1 when they miss it by no more than their written precision
    allows (:func:`sum_tolerance`); ``LawTable.rescaled`` marks those rows.

    Raises:
        DataError: unreadable file, missing ``mix:``/``loss:`` columns, a value that is not a
            number, negative ratios, or rows whose ratios miss 1 by more (their count, the first
            few named).
    """
    p = Path(path)
    if not p.exists():
        raise DataError("no such file", path=p)
    with io.StringIO(read_text(p, "CSV file"), newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        mix = [h for h in header if h.startswith("mix:")]
        loss = [h for h in header if h.startswith("loss:")]
        if not mix:
            raise DataError("missing columns: no 'mix:<train domain>' column (data ratios)", path=p)
        if not loss and require_loss:
            raise DataError("missing columns: no 'loss:<validation domain>' column", path=p)
        has_state, has_step, has_size = "state" in header, "step" in header, "model_size" in header
        R, L, S, N, ids = [], [], [], [], []
        sums: list[float] = []
        tols: list[float] = []
        for i, raw in enumerate(reader, start=1):
            row = {(k or "").strip(): (v if v is not None else "") for k, v in raw.items()}
            if None in raw:
                raise DataError(f"row {i}: more cells than columns", path=p)
            if require_loss and has_state and row.get("state", "COMPLETE").strip() not in ("", "COMPLETE"):
                continue
            missing = [k.strip() for k, v in raw.items() if k is not None and v is None]  # a short row
            if missing:
                raise DataError(f"row {i}, column {missing[0]!r}: missing value", path=p)
            r = np.array([_num(row[c], p, i, c, allow_empty=False) for c in mix])
            neg = np.flatnonzero(r < 0)
            if neg.size:
                raise DataError(f"row {i}, column {mix[neg[0]]!r}: negative proportion {r[neg[0]]:g}", path=p)
            sums.append(float(r.sum()))
            tols.append(sum_tolerance([row[c] for c in mix]))
            R.append(r / r.sum() if r.sum() > 0 else r)
            L.append([_num(row[c], p, i, c, allow_empty=True) for c in loss])
            if has_step:
                S.append(_num(row["step"], p, i, "step", allow_empty=False))
            if has_size:
                N.append(_num(row["model_size"], p, i, "model_size", allow_empty=False))
            ids.append(i)
    if not R:
        raise DataError("no data rows", path=p)
    _check_sums(sums, tols, ids, mix, p)
    return LawTable(
        [c[4:] for c in mix],
        [c[5:] for c in loss],
        np.array(R),
        np.array(L, dtype=np.float64).reshape(len(R), len(loss)),
        np.array(S) if has_step else None,
        np.array(N) if has_size else None,
        np.array(ids),
        str(p),
        np.abs(np.array(sums) - 1.0) > RESCALED,
    )


def tidy_to_wide(path: str | Path, out: str | Path | None = None) -> list[dict[str, Any]]:
    """Convert the Data Mixing Laws fixture's tidy format to a measurement table.

    The tidy file has columns model, run_id, step, r1..rK, valid_domain, loss (one row per
    validation domain); the result has one row per (model, run_id, step) with ``mix:r<j>``,
    ``loss:<valid_domain>``, ``step``, ``model_size`` and ``run_id`` columns. Written to ``out``
    as CSV when given.
    """
    p = Path(path)
    with io.StringIO(read_text(p, "CSV file"), newline="") as f:
        reader = csv.DictReader(f)
        rcols = [c for c in (reader.fieldnames or []) if re.fullmatch(r"r\d+", c)]
        wide: dict[tuple[str, str, str], dict[str, Any]] = {}
        targets: list[str] = []
        for row in reader:
            key = (row["model"], row["run_id"], row["step"])
            w = wide.setdefault(
                key,
                {"run_id": row["run_id"], "model_size": row["model"], "step": row["step"]}
                | {f"mix:{c}": row[c] for c in rcols},
            )
            w[f"loss:{row['valid_domain']}"] = row["loss"]
            if row["valid_domain"] not in targets:
                targets.append(row["valid_domain"])
    rows = list(wide.values())
    if out is not None:
        cols = ["run_id", "model_size", "step"] + [f"mix:{c}" for c in rcols] + [f"loss:{t}" for t in targets]
        lines = [",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]
        write_text_atomic(Path(out), "\n".join(lines) + "\n")
    return rows


def save_fit(law: MixingLaw, path: Path, extra: dict[str, Any]) -> None:
    """Write a fit as JSON (the law plus ``extra``: provenance, inputs)."""
    write_json_atomic(path, law.to_json() | extra)


def load_fit(run_or_path: RunDir | str | Path) -> MixingLaw:
    """Read ``law/fit.json`` of a run, or a fit JSON file."""
    p = Path(run_or_path) if isinstance(run_or_path, (str, Path)) else run_or_path.law / "fit.json"
    if p.is_dir():
        p = p / "law" / "fit.json"
    if not p.is_file():
        raise StageError(f"{p} missing: run `demix law fit` first")
    try:
        return MixingLaw.from_json(read_json(p))
    except DataError:
        raise
    except Exception as e:
        raise DataError(str(e), path=p) from None


def read_loss_weights(path: Path | None, targets: list[str]) -> np.ndarray | None:
    """(V,) weights of the overall loss from a JSON ``{validation domain: weight}`` (absent: 0).

    Raises:
        DataError: not a JSON object, or a key that is not one of ``targets``.
    """
    if path is None:
        return None
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise DataError("must be a JSON object {validation domain: weight}", path=path)
    unknown = sorted(set(doc) - set(targets))
    if unknown:
        raise DataError(f"{unknown[0]!r} is not a validation domain of the table ({targets})", path=path)
    bad = [
        k
        for k, v in doc.items()
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < float("inf")
    ]
    if bad or not any(doc.values()):
        what = f"{bad[0]!r}: {doc[bad[0]]!r} is not a finite number >= 0" if bad else "all weights are 0"
        raise DataError(f"{what} (weights of the overall loss)", path=path)
    return np.array([float(doc.get(t, 0.0)) for t in targets])


def write_predictions(law: MixingLaw, mixtures: Path, out: Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Predict the mixtures of a ``mix:<d>`` CSV; write its rows plus ``pred:<target>`` columns.

    ``pred:aggregate`` (the overall loss) is added when the law knows its aggregation weights.

    Returns:
        (n, V) per-domain predictions, the (n,) overall loss (``None`` without weights), and how
        many rows' shares were rescaled to sum to 1 (:func:`read_table`).

    Raises:
        DataError: the CSV's ``mix:`` columns are not exactly the law's domains.
    """
    table = read_table(mixtures, require_loss=False)
    missing = [d for d in law.domains if d not in table.domains]
    if missing:
        raise DataError(
            f"missing columns: 'mix:{missing[0]}' (the law's domains: {law.domains})", path=mixtures
        )
    extra = [d for d in table.domains if d not in law.domains]
    if extra:
        raise DataError(f"column 'mix:{extra[0]}' is not a domain of the law ({law.domains})", path=mixtures)
    R = table.R[:, [table.domains.index(d) for d in law.domains]]  # (n, K) in the law's order
    P = law.predict(R)  # (n, V)
    agg = law.predict_aggregate(R) if law.aggregate is not None else None
    with io.StringIO(read_text(mixtures, "CSV file"), newline="") as f:
        rows = list(csv.DictReader(f))
    cols = list(rows[0].keys()) if rows else []
    cols += [f"pred:{t}" for t in law.targets] + (["pred:aggregate"] if agg is not None else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for j, i in enumerate(table.rows - 1):
        row = dict(rows[i]) | {f"pred:{t}": f"{P[j, v]:.6g}" for v, t in enumerate(law.targets)}
        if agg is not None:
            row["pred:aggregate"] = f"{agg[j]:.6g}"
        w.writerow(row)
    write_text_atomic(out, buf.getvalue())
    return P, agg, table.n_rescaled
