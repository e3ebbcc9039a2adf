"""The law as a method: fitted on the swarm's per-domain held-out losses, optimised under the run's
constraints, as in the Data Mixing Laws' pipeline.

- Nested step law (``compare.law.step_law``): when the swarm trained fewer tokens than the check
  models, each member's held-out loss curve (``eval_log.jsonl``: loss per domain every
  ``train.eval_every`` steps) is extrapolated to the check budget by L(D) = E + B·D^-β before the
  mixing law is fitted — the law then predicts models trained as long as the ones that check it.
  Every model starts from the base, so there is one model size and no size law.
- Subset selection (``compare.law.subset``): the paper fits on the runs that minimise the law's
  fitting error; here the error is the mean absolute error on the runs left out of the subset, so a
  subset cannot win by describing only itself. The chosen subset and its error are recorded.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from demix.compare.methods import Answer, normalised
from demix.compare.models import Cost, Trained
from demix.compare.swarm import Swarm
from demix.config import ExperimentConfig
from demix.errors import DemixError


@dataclass
class LawRows:
    """What the law is fitted on: mixtures R (n, K), per-domain losses L (n, K), and how they were got."""

    R: np.ndarray
    L: np.ndarray
    source: str
    ids: list[str]
    notes: list[str] = field(default_factory=list)


def _curve(m: Trained, domains: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """(tokens (p,), losses (p, K), tokens per step) of a member's held-out evaluations during
    training (tokens per step 1 when it has none)."""
    path = m.path / "eval_log.jsonl"
    rows = (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    )
    x = np.array([float(r["tokens"]) for r in rows], dtype=np.float64)
    y = np.array([[float(r["loss"].get(d, np.nan)) for d in domains] for r in rows], dtype=np.float64)
    per_step = max(int(rows[-1]["tokens"]) // max(int(rows[-1]["step"]), 1), 1) if rows else 1
    return x, y.reshape(len(rows), len(domains)), per_step


def _trained_tokens(per_step: int, budget: int) -> int:
    """The tokens a model with this budget trains: whole steps, as the trainer rounds up."""
    return math.ceil(budget / per_step) * per_step


def law_rows(cfg: ExperimentConfig, swarm: Swarm, domains: list[str], target_tokens: int) -> LawRows:
    """The swarm's rows for the law: final held-out bits per byte, or with the step law (the swarm
    shorter than the check budget) every member's loss curve extrapolated to ``target_tokens``."""
    ok = np.isfinite(swarm.L).all(axis=1)
    ids = [m.id for m, k in zip(swarm.members, ok, strict=True) if k]
    plain = LawRows(swarm.R[ok], swarm.L[ok], "held-out bits per byte of each swarm model", ids)
    if not cfg.compare.law.step_law or swarm.tokens >= target_tokens:
        return plain
    from demix.law import at_target

    curves = [_curve(m, domains) for m in swarm.members]
    few = min(int(np.isfinite(y).all(axis=1).sum()) for _, y, _ in curves)
    if few < 3:
        plain.notes.append(
            f"step law not used: a swarm model has {few} held-out evaluations, the step law needs 3 "
            f"(lower train.eval_every); the law describes {swarm.tokens:,}-token models"
        )
        return plain
    R = np.concatenate(
        [np.repeat(m.r[None], len(x), axis=0) for m, (x, _, _) in zip(swarm.members, curves, strict=True)]
    )
    x = np.concatenate([c[0] for c in curves])
    y = np.concatenate([c[1] for c in curves])
    target = _trained_tokens(curves[0][2], target_tokens)
    ext = at_target(R, y, x, None, target_step=float(target), target_size=None, delta=cfg.law.huber_delta)
    order = {tuple(np.round(m.r, 9)): m.id for m in swarm.members}
    return LawRows(
        ext.R,
        ext.L,
        f"held-out loss curves extrapolated by the step law from {int(x.max()):,} to {target:,} tokens",
        [order.get(tuple(np.round(r, 9)), "?") for r in ext.R],
    )


def _mae(law: Any, R: np.ndarray, L: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(law.predict(R), dtype=np.float64) - L)))


def _subsets(n: int, size: int, draws: int, seed: int) -> list[np.ndarray]:
    """Every subset when there are no more than ``draws``, else ``draws`` seeded distinct ones."""
    if math.comb(n, size) <= draws:
        return [np.array(c) for c in itertools.combinations(range(n), size)]
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    out: list[np.ndarray] = []
    while len(out) < draws:
        pick = tuple(np.sort(rng.choice(n, size=size, replace=False)).tolist())
        if pick not in seen:
            seen.add(pick)
            out.append(np.array(pick))
    return out


def select_subset(
    cfg: ExperimentConfig, rows: LawRows, domains: list[str]
) -> tuple[LawRows, dict[str, Any], Any]:
    """The subset of ``compare.law.subset`` rows whose fitted law has the lowest fitting error
    (mean absolute error on the subset; the size is fixed, so fewer rows cannot win), what was
    tried, and the law fitted on it."""
    from demix.law import fit

    lc = cfg.compare.law
    n, size = len(rows.R), int(lc.subset or 0)
    if size >= n:
        raise DemixError(
            f"compare.law.subset: {size} runs of {n} leaves none out; use at most {n - 1} "
            "or raise compare.swarm.count"
        )
    best: tuple[float, np.ndarray, Any] | None = None
    tried = []
    for pick in _subsets(n, size, lc.subset_draws, cfg.compare.swarm.seed + 2):
        law = fit(rows.R[pick], rows.L[pick], cfg.law, domains=domains, targets=domains)
        err = _mae(law, rows.R[pick], rows.L[pick])
        tried.append(err)
        if best is None or err < best[0]:
            best = (err, pick, law)
    assert best is not None
    err, pick, law = best
    rest = np.setdiff1d(np.arange(n), pick)
    chosen = LawRows(rows.R[pick], rows.L[pick], rows.source, [rows.ids[i] for i in pick], list(rows.notes))
    info = {
        "size": size,
        "of": n,
        "tried": len(tried),
        "fit_mae": err,
        "median_fit_mae": float(np.median(tried)),
        "left_out_mae": _mae(law, rows.R[rest], rows.L[rest]),
        "left_out": [rows.ids[i] for i in rest],
        "ids": chosen.ids,
    }
    return chosen, info, law


def fit_law(
    cfg: ExperimentConfig,
    swarm: Swarm,
    domains: list[str],
    target_tokens: int,
    weights: tuple[np.ndarray, str],
) -> tuple[Any, dict[str, Any]]:
    """The data-mixing law fitted on the swarm (after the step law and subset selection when asked),
    and what it was fitted on; ``weights`` (s, how) weigh its per-domain losses into the one loss it
    optimises and ranks by (:func:`demix.compare.check.loss_weights`)."""
    from demix.law import fit

    rows = law_rows(cfg, swarm, domains, target_tokens)
    if len(rows.R) < len(domains) + 2:
        raise DemixError(
            f"compare: the law needs at least {len(domains) + 2} swarm models with losses on every "
            f"domain, got {len(rows.R)}; raise compare.swarm.count"
        )
    s, how = weights
    info: dict[str, Any] = {
        "rows": len(rows.R),
        "source": rows.source,
        "notes": rows.notes,
        "loss_weights": dict(zip(domains, map(float, s), strict=True)),
        "loss_weights_source": how,
    }
    if cfg.compare.law.subset is not None:
        _, info["subset"], law = select_subset(cfg, rows, domains)
        return law, info
    return fit(rows.R, rows.L, cfg.law, domains=domains, targets=domains), info


def law_answer(
    cfg: ExperimentConfig,
    swarm: Swarm,
    law: Any,
    info: dict[str, Any],
    domains: list[str],
    counts: np.ndarray,
) -> Answer:
    """The law's optimum under the run's constraints (the same bounds the law stage uses)."""
    from demix.law import optimize_for

    s = np.array([info["loss_weights"][d] for d in domains])
    r = normalised(optimize_for(cfg, law, domains, token_counts=counts, weights=s))
    loss = float(np.asarray(law.predict(r[None]), dtype=np.float64)[0] @ s)
    sub = info.get("subset")
    fitted = (
        f"{sub['size']} of {sub['of']} swarm models (the subset the law fits best)"
        if sub
        else (f"{info['rows']} swarm models")
    )
    note = "; ".join(
        [
            f"law fitted on {fitted}: {info['source']}",
            *info["notes"],
            f"losses weighted by {info['loss_weights_source']}; optimised under search.constraints",
        ]
    )
    return Answer("law", r, swarm.cost.plus(Cost()), note, {"law_loss": loss}, extra={"law_fit": info})
