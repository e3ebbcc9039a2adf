"""The law's inputs and outputs: measurement CSVs, a run's trials and references, fit JSON.

A measurement table has one row per run (or checkpoint): ``mix:<train domain>`` data ratios that
sum to 1, ``loss:<validation domain>`` losses (an empty cell: not measured), and optionally
``step`` and ``model_size`` (a number or 70M / 1.4B). ``search/trials.csv`` is such a table;
rows whose ``state`` is not COMPLETE are skipped. Problems are reported with the row and column.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import DataError, StageError
from demix.law.mixing import MixingLaw
from demix.util.io import read_json, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from demix.config import ExperimentConfig
    from demix.run import RunDir

SUM_TOL = 1e-3  # tolerance on Σ mix:<d> = 1 (tables are often written with a few digits)
_SIZE = re.compile(r"^\s*([0-9.eE+-]+)\s*([kKmMbBtT]?)\s*$")
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


@dataclass
class LawTable:
    """Measurements for the law.

    Attributes:
        domains: K training domains (``mix:`` columns, file order).
        targets: V validation domains (``loss:`` columns).
        R: (n, K) data ratios, rows renormalised to sum exactly 1.
        L: (n, V) losses, NaN where not measured.
        step, size: (n,) or ``None`` when the column is absent.
        rows: (n,) the CSV data-row number of each row (1 = first row after the header).
        source: where it was read from.
    """

    domains: list[str]
    targets: list[str]
    R: np.ndarray
    L: np.ndarray
    step: np.ndarray | None
    size: np.ndarray | None
    rows: np.ndarray
    source: str

    def subset(self, idx: np.ndarray) -> LawTable:

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return LawTable(
            self.domains, self.targets, self.R[idx], self.L[idx], pick(self.step), pick(self.size),
            self.rows[idx], self.source,
        )  # fmt: skip


def parse_size(text: str) -> float:
    """'70M' -> 7e7, '1.4B' -> 1.4e9, '125000000' -> 1.25e8."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _SCALE[m.group(2).lower()]


def _num(text: str, path: Path, row: int, col: str, *, allow_empty: bool) -> float:
    t = text.strip()
    if t == "" and allow_empty:
        return float("nan")
    try:
        v = parse_size(t) if col == "model_size" else float(t)
    except ValueError:
        raise DataError(f"row {row}, column {col!r}: {text!r} is not a number", path=path) from None
    if not np.isfinite(v):
        raise DataError(f"row {row}, column {col!r}: {text!r} is not a finite number", path=path)
    return v


def read_table(path: str | Path, *, require_loss: bool = True) -> LawTable:
    """Read a measurement CSV (see module docstring); ``require_loss=False`` for mixtures to predict.

    Raises:
        DataError: unreadable file, missing ``mix:``/``loss:`` columns, a value that is not a
            number, negative ratios or ratios that do not sum to 1, naming the row and column.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("no such file", path=p)
    with p.open(newline="", encoding="utf-8") as f:
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
        for i, raw in enumerate(reader, start=1):
            row = {(k or "").strip(): (v if v is not None else "") for k, v in raw.items()}
            if None in raw:
                raise DataError(f"row {i}: more cells than columns", path=p)
            if require_loss and has_state and row.get("state", "COMPLETE").strip() not in ("", "COMPLETE"):
                continue
            missing = [c for c in mix + loss if row.get(c) is None]
            if missing:
                raise DataError(f"row {i}, column {missing[0]!r}: missing value", path=p)
            r = np.array([_num(row[c], p, i, c, allow_empty=False) for c in mix])
            neg = np.flatnonzero(r < 0)
            if neg.size:
                raise DataError(f"row {i}, column {mix[neg[0]]!r}: negative proportion {r[neg[0]]:g}", path=p)
            if abs(r.sum() - 1.0) > SUM_TOL:
                raise DataError(
                    f"row {i}, columns {mix[0]!r}..{mix[-1]!r}: proportions sum to {r.sum():.6g}, not 1",
                    path=p,
                )
            R.append(r / r.sum())
            L.append([_num(row[c], p, i, c, allow_empty=True) for c in loss])
            if has_step:
                S.append(_num(row["step"], p, i, "step", allow_empty=False))
            if has_size:
                N.append(_num(row["model_size"], p, i, "model_size", allow_empty=False))
            ids.append(i)
    if not R:
        raise DataError("no data rows", path=p)
    return LawTable(
        [c[4:] for c in mix],
        [c[5:] for c in loss],
        np.array(R),
        np.array(L, dtype=np.float64).reshape(len(R), len(loss)),
        np.array(S) if has_step else None,
        np.array(N) if has_size else None,
        np.array(ids),
        str(p),
    )


def tidy_to_wide(path: str | Path, out: str | Path | None = None) -> list[dict[str, Any]]:
    """Convert the Data Mixing Laws fixture's tidy format to a measurement table.

    The tidy file has columns model, run_id, step, r1..rK, valid_domain, loss (one row per
    validation domain); the result has one row per (model, run_id, step) with ``mix:r<j>``,
    ``loss:<valid_domain>``, ``step``, ``model_size`` and ``run_id`` columns. Written to ``out``
    as CSV when given.
    """
    p = Path(path)
    with p.open(newline="", encoding="utf-8") as f:
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


def resolve_input(path: str | Path) -> tuple[Path, Path | None]:
    """(CSV to read, run directory or None) for ``demix law fit CSV_OR_RUN``."""
    p = Path(path)
    if p.is_dir():
        csv_path = p / "search" / "trials.csv"
        if not csv_path.is_file():
            raise StageError(f"{csv_path} missing: run `demix search {p}` first", path=None)
        return csv_path, p
    return p, None


def read_references(run: RunDir) -> LawTable:
    """The trained references of ``demix validate`` (``validation/validation.json``) as a table."""
    path = run.validation / "validation.json"
    if not path.is_file():
        raise StageError(f"{path} missing: run `demix validate {run.root}` first")
    doc = read_json(path)
    domains = list(doc["domains"])
    mixes = doc.get("mixtures") or []
    targets = sorted(
        {k for m in mixes for k in (m.get("reference_bpb") or {})}, key=lambda d: (d not in domains, d)
    )
    R = np.array([[float(m["r"][d]) for d in domains] for m in mixes], dtype=np.float64).reshape(
        -1, len(domains)
    )
    L = np.array(
        [[float((m.get("reference_bpb") or {}).get(t, np.nan)) for t in targets] for m in mixes],
        dtype=np.float64,
    ).reshape(-1, len(targets))
    return LawTable(domains, targets, R, L, None, None, np.arange(1, len(R) + 1), str(path))


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


def aggregate_weights(cfg: ExperimentConfig, run: RunDir | None, targets: list[str]) -> np.ndarray:
    """Weights of the per-domain losses in the overall loss.

    ``law.aggregate_weights`` when given (domains not listed get 0); otherwise the held-out token
    counts from the run's manifest (the validation mix as prepared); otherwise uniform.
    """
    given = cfg.law.aggregate_weights
    if given:
        s = np.array([float(given.get(t, 0.0)) for t in targets])
        if s.sum() > 0:
            return s / s.sum()
    if run is not None and run.manifest.is_file():
        try:
            from demix.data.manifest import Manifest

            m = Manifest.load(run)
            counts = dict(zip(m.names, m.token_counts("val"), strict=True))
            s = np.array([float(counts.get(t, 0.0)) for t in targets])
            if s.sum() > 0:
                return s / s.sum()
        except Exception:  # an unreadable manifest falls back to uniform weights
            pass
    return np.full(len(targets), 1.0 / len(targets))
