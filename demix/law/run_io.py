"""Reading a run for the law: trained references as a law table, the search's recommendation, token
counts, and how the check weighs its per-domain losses into one overall loss (``law.aggregate_weights``,
the search objective's bits-per-byte tasks, or the held-out token counts).

Files only (trials, references, baselines, the manifest, the recommendation); :mod:`.stage` runs the
check and the fit on what this reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from demix.errors import StageError
from demix.law.table import LawTable
from demix.mixture import from_mapping
from demix.util.hashing import hash_file
from demix.util.io import read_json

if TYPE_CHECKING:
    from demix.config import ExperimentConfig
    from demix.run import RunDir


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
    )  # (n, K)
    L = np.array(
        [[float((m.get("reference_bpb") or {}).get(t, np.nan)) for t in targets] for m in mixes],
        dtype=np.float64,
    ).reshape(-1, len(targets))  # (n, V)
    return LawTable(domains, targets, R, L, None, None, np.arange(1, len(R) + 1), str(path))


def aggregate_weights(cfg: ExperimentConfig, run: RunDir | None, targets: list[str]) -> np.ndarray:
    """(V,) weights of the per-domain losses in the overall loss.

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
            from demix.data.manifest import Manifest  # imported here: `import demix.law` stays light

            m = Manifest.load(run)
            counts = dict(zip(m.names, m.token_counts("val"), strict=True))
            s = np.array([float(counts.get(t, 0.0)) for t in targets])
            if s.sum() > 0:
                return s / s.sum()
        except Exception:  # an unreadable manifest falls back to uniform weights
            pass
    return np.full(len(targets), 1.0 / len(targets))


def objective_weights(run: RunDir, targets: list[str]) -> tuple[np.ndarray, list[str]] | None:
    """(V,) loss weights s under which the law's overall loss Σ s_d L_d ranks mixtures as the search's
    objective does, as far as the objective is a function of these losses; and its other tasks.

    The objective is affine in its task values, with the slopes
    :func:`demix.evaluate.scores.objective_coefficients` gives for the frozen baselines of
    ``search/baselines.json``; s is minus the slopes of its per-domain bits-per-byte tasks,
    normalised, so the law's optimum is directly comparable with the search's. Tasks that are not a
    domain's bits per byte (a benchmark's accuracy) are returned by name: the law cannot see them,
    and the check says so. ``None`` when the objective has no bits-per-byte task.
    """
    if not run.baselines.is_file():
        return None
    baselines = read_json(run.baselines).get("baselines", {})
    scores = [b["score"]["metrics"] for b in baselines.values() if "score" in b]
    if not scores or not scores[0]:
        return None
    # Imported here: evaluate's package loads its harness, which `import demix.law` does not need.
    from demix.evaluate.result import EvalResult, Metric
    from demix.evaluate.scores import loss_slopes
    from demix.evaluate.spec import bpb_task_name

    # The first baseline's metrics name the objective's tasks, groups and weights (as in the search).
    first = EvalResult(
        {
            name: Metric(
                float(m["value"]),
                None,
                m.get("direction", "lower"),
                m["group"],
                weight=float(m.get("weight", 1.0)),
            )
            for name, m in scores[0].items()
        }
    )
    frozen = {str(i): {name: float(m["value"]) for name, m in sc.items()} for i, sc in enumerate(scores)}
    s, others = loss_slopes(first, frozen, {bpb_task_name(t): t for t in targets}, targets)
    return (s / s.sum(), others) if s.sum() > 0 else None


def read_recommendation(run: RunDir, domains: list[str]) -> tuple[np.ndarray | None, str]:
    """The search's recommended ratios (``search/recommendation.json``) in ``domains`` order, and the
    file's hash (``None`` / ``""`` when there is none; ``None`` when it names other domains)."""
    path = run.search / "recommendation.json"
    if not path.is_file():
        return None, ""
    doc = read_json(path)
    r = doc.get("r")
    if not isinstance(r, dict) or set(r) != set(domains):
        return None, hash_file(path)
    return from_mapping(r, domains), hash_file(path)


def run_token_counts(cfg: ExperimentConfig, run: RunDir, domains: list[str]) -> np.ndarray | None:
    from demix.data.manifest import token_counts  # imported here: `import demix.law` stays light

    return token_counts(cfg, run, domains)


def check_weights(cfg: ExperimentConfig, run: RunDir, targets: list[str]) -> tuple[np.ndarray, str]:
    """(V,) aggregation weights of the check, and where they come from (for check.json)."""
    weighted = None if cfg.law.aggregate_weights else objective_weights(run, targets)
    if weighted is not None:
        s, others = weighted
        how = "the search objective (bits per byte weighted as the objective weighs them)"
        if others:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            how = (
                "the search objective's bits-per-byte tasks, weighted as the objective weighs them; "
                f"its other tasks ({shown}) are not a function of these losses, so the law cannot see them"
            )
        return s, how
    s = aggregate_weights(cfg, run, targets)
    if cfg.law.aggregate_weights:
        return s, "law.aggregate_weights"
    return s, "held-out token counts (the search objective has no bits-per-byte task)"
