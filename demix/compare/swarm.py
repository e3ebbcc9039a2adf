"""The swarm RegMix and the law share: small models trained from the base on mixtures drawn from a
Dirichlet around the token prior, at the references' scale (RegMix: many tiny runs; CLIMB the same).

The validation references are such a swarm already (``demix validate``): those trained on the same
budget are reused, so a run that validated pays only for the extra members. RegMix's answer is the
mean of the top-k LightGBM predictions over a pool drawn like the swarm; the law's is its optimum
under the run's constraints (``search.constraints``, the epoch cap), fitted on the swarm's
per-domain held-out losses (:mod:`demix.compare.lawfit`). ``compare.swarm.sampler:
double_diminishing`` draws the Data Mixing Laws' design instead of the Dirichlet
(:mod:`demix.compare.designs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from demix.compare.designs import dirichlet_around, double_diminishing
from demix.compare.methods import Answer, normalised
from demix.compare.models import Cost, Models, Trained, log
from demix.config import ExperimentConfig
from demix.errors import DemixError
from demix.run import RunDir
from demix.util.io import read_json


@dataclass
class Swarm:
    """The trained swarm: mixtures R (n, K), scores y (n,), per-domain losses L (n, K), the cost,
    each member's budget (tokens) and how the new members' mixtures were drawn."""

    members: list[Trained]
    R: np.ndarray
    y: np.ndarray
    L: np.ndarray
    cost: Cost
    reused: int
    tokens: int
    sampler: str

    def to_json(self, domains: list[str]) -> dict[str, Any]:
        return {
            "n": len(self.members),
            "tokens": self.tokens,
            "sampler": self.sampler,
            "reused_from_validation": self.reused,
            "members": [
                {"id": m.id, "r": dict(zip(domains, map(float, m.r), strict=True)), "score": float(s)}
                for m, s in zip(self.members, self.y, strict=True)
            ],
            "cost": self.cost.to_json(),
        }


def _validation_members(models: Models, run: RunDir, tokens: int) -> list[Trained]:
    """The validation references trained on ``tokens`` tokens (none when validation did not run)."""
    path = run.validation / "validation.json"
    if not path.is_file():
        return []
    doc = read_json(path)
    if int(doc.get("reference_tokens") or -1) != tokens:
        return []
    out = []
    domains = list(doc["domains"])
    for row in doc.get("mixtures") or []:
        r = np.array([float(row["r"][d]) for d in domains])
        t = models.existing(str(row["id"]), r, models.run.reference(str(row["id"])))
        if t is not None:
            out.append(t)
    return out


def draw_mixtures(
    cfg: ExperimentConfig, domains: list[str], prior: np.ndarray, counts: np.ndarray, n: int
) -> np.ndarray:
    """The swarm's new mixtures by ``compare.swarm.sampler`` (:mod:`demix.compare.designs`); the
    double-diminishing caps and feasibility are the run's constraints and epoch cap."""
    sc = cfg.compare.swarm
    if sc.sampler == "dirichlet":
        return dirichlet_around(prior, sc.concentration, n, sc.seed)
    from demix.mixture.bounds import bounds_for

    b = bounds_for(cfg, domains, counts)
    return double_diminishing(
        b.hi, sc.granularity, sc.halvings, n, sc.seed, feasible=lambda r: b.violation(r) <= 1e-9
    )


def build_swarm(
    cfg: ExperimentConfig,
    models: Models,
    domains: list[str],
    prior: np.ndarray,
    counts: np.ndarray,
    score: Callable[[Trained], float],
) -> Swarm:
    """Train (or reuse) the swarm and score every member with ``score`` (the comparison's scale)."""
    sc = cfg.compare.swarm
    tokens = int(sc.tokens or cfg.validate_.reference_tokens or cfg.train.reference_budget)
    reused = _validation_members(models, models.run, tokens) if sc.reuse_validation else []
    R = draw_mixtures(cfg, domains, prior, counts, max(0, sc.count - len(reused)))
    members = list(reused)
    for i, r in enumerate(R):
        log(models.progress, f"swarm {i + 1}/{len(R)}")
        members.append(models.train("swarm", r, tokens))
    cost = Cost()
    for m in members:
        cost = cost.plus(m.cost(f"swarm {m.id}"))
    Rm = np.stack([m.r for m in members])
    L = np.array([[m.result.bpb.get(d, np.nan) for d in domains] for m in members], dtype=np.float64)
    y = np.array([score(m) for m in members], dtype=np.float64)
    return Swarm(members, Rm, y, L, cost, len(reused), tokens, sc.sampler)


def regmix_model(swarm: Swarm, seed: int) -> Any:
    """LightGBM with RegMix's settings on the swarm's (mixture, score) rows."""
    from demix.law.compare import lightgbm

    ok = np.isfinite(swarm.y)
    if ok.sum() < 2:
        raise DemixError("compare: regmix needs at least 2 swarm members with a finite score")
    return lightgbm(swarm.R[ok], swarm.y[ok], seed=seed)


def regmix_answer(
    cfg: ExperimentConfig, swarm: Swarm, domains: list[str], prior: np.ndarray, counts: np.ndarray, gbm: Any
) -> Answer:
    """The mean of the top-k predicted mixtures over a Dirichlet pool around the prior (RegMix),
    keeping the pool mixtures the run's constraints allow (so the mean of the top k is allowed too:
    the constraints are convex)."""
    from demix.mixture.bounds import bounds_for

    rc, sc = cfg.compare.regmix, cfg.compare.swarm
    b = bounds_for(cfg, domains, counts)
    drawn = dirichlet_around(prior, sc.concentration, rc.pool_size, sc.seed + 1)
    pool = drawn[b.violations(drawn) <= 1e-9]
    if len(pool) == 0:
        raise DemixError(
            f"compare: none of RegMix's {len(drawn):,} pool mixtures meets search.constraints and the "
            "epoch cap; raise compare.regmix.pool_size or compare.swarm.concentration"
        )
    pred = np.asarray(gbm.predict(pool), dtype=np.float64)
    k = min(rc.top_k, len(pool))
    top = np.argsort(-pred, kind="stable")[:k]
    r = normalised(pool[top].mean(axis=0))
    note = (
        f"LightGBM on {len(swarm.members)} swarm models; mean of top {k} of {len(pool):,} pool mixtures"
        + (f" ({len(pool):,} of {len(drawn):,} drawn meet the constraints)" if len(pool) < len(drawn) else "")
    )
    constant = bool(np.ptp(pred) == 0)
    if constant:
        note += (
            f"; the regressor predicts one value for every mixture (LightGBM with RegMix's settings does "
            f"not split on {len(swarm.members)} rows: min_data_in_leaf is 20), so this is the mean of the "
            "pool's first k draws, about the prior; raise compare.swarm.count"
        )
    return Answer(
        "regmix",
        r,
        swarm.cost.plus(Cost()),
        note,
        {"predicted_score": float(gbm.predict(r[None])[0])},
        extra={"regressor_constant": constant},
    )
