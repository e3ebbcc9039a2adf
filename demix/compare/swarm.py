"""The swarm RegMix and the law share: small models trained from the base on mixtures drawn from a
Dirichlet around the token prior, at the references' scale (RegMix: many tiny runs; CLIMB the same).

The validation references are such a swarm already (``demix validate``): those trained on the same
budget are reused, so a run that validated pays only for the extra members. RegMix's answer is the
mean of the top-k LightGBM predictions over a pool drawn like the swarm; the law's is its optimum
under the run's constraints (``search.constraints``, the epoch cap), fitted on the swarm's
per-domain held-out losses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from demix.compare.methods import Answer, normalised
from demix.compare.models import Cost, Models, Trained, log
from demix.config import ExperimentConfig
from demix.errors import DemixError
from demix.run import RunDir
from demix.util.io import read_json


def dirichlet_around(prior: np.ndarray, concentration: float, n: int, seed: int) -> np.ndarray:
    """(n, K) mixtures ~ Dirichlet(concentration · K · prior); the first rows do not depend on n."""
    alpha = np.maximum(concentration * len(prior) * np.asarray(prior, dtype=np.float64), 1e-3)
    rng = np.random.default_rng(seed)
    return np.stack([rng.dirichlet(alpha) for _ in range(n)])


@dataclass
class Swarm:
    """The trained swarm: mixtures R (n, K), scores y (n,), per-domain losses L (n, K), the cost."""

    members: list[Trained]
    R: np.ndarray
    y: np.ndarray
    L: np.ndarray
    cost: Cost
    reused: int

    def to_json(self, domains: list[str]) -> dict[str, Any]:
        return {
            "n": len(self.members),
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


def build_swarm(
    cfg: ExperimentConfig,
    models: Models,
    domains: list[str],
    prior: np.ndarray,
    score: Callable[[Trained], float],
) -> Swarm:
    """Train (or reuse) the swarm and score every member with ``score`` (the comparison's scale)."""
    sc = cfg.compare.swarm
    tokens = int(sc.tokens or cfg.validate_.reference_tokens or cfg.train.reference_budget)
    reused = _validation_members(models, models.run, tokens) if sc.reuse_validation else []
    R = dirichlet_around(prior, sc.concentration, max(0, sc.count - len(reused)), sc.seed)
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
    return Swarm(members, Rm, y, L, cost, len(reused))


def regmix_model(swarm: Swarm, seed: int) -> Any:
    """LightGBM with RegMix's settings on the swarm's (mixture, score) rows."""
    from demix.law.compare import lightgbm

    ok = np.isfinite(swarm.y)
    if ok.sum() < 2:
        raise DemixError("compare: regmix needs at least 2 swarm members with a finite score")
    return lightgbm(swarm.R[ok], swarm.y[ok], seed=seed)


def regmix_answer(cfg: ExperimentConfig, swarm: Swarm, prior: np.ndarray, gbm: Any) -> Answer:
    """The mean of the top-k predicted mixtures over a Dirichlet pool around the prior (RegMix)."""
    rc, sc = cfg.compare.regmix, cfg.compare.swarm
    pool = dirichlet_around(prior, sc.concentration, rc.pool_size, sc.seed + 1)
    pred = np.asarray(gbm.predict(pool), dtype=np.float64)
    k = min(rc.top_k, len(pool))
    top = np.argsort(-pred, kind="stable")[:k]
    r = normalised(pool[top].mean(axis=0))
    note = f"LightGBM on {len(swarm.members)} swarm models; mean of top {k} of {len(pool):,} pool mixtures"
    return Answer(
        "regmix", r, swarm.cost.plus(Cost()), note, {"predicted_score": float(gbm.predict(r[None])[0])}
    )


def fit_law(cfg: ExperimentConfig, swarm: Swarm, domains: list[str]) -> Any:
    """The data-mixing law fitted on the swarm's per-domain held-out losses (bits per byte)."""
    from demix.law import fit

    ok = np.isfinite(swarm.L).all(axis=1)
    if ok.sum() < len(domains) + 2:
        raise DemixError(
            f"compare: the law needs at least {len(domains) + 2} swarm models with losses on every "
            f"domain, got {int(ok.sum())}; raise compare.swarm.count"
        )
    return fit(swarm.R[ok], swarm.L[ok], cfg.law, domains=domains, targets=domains)


def law_answer(
    cfg: ExperimentConfig, swarm: Swarm, law: Any, domains: list[str], counts: np.ndarray
) -> Answer:
    """The law's optimum under the run's constraints (the same bounds the law stage uses)."""
    from demix.law import optimize_for

    r = normalised(optimize_for(cfg, law, domains, token_counts=counts))
    loss = float(np.mean(law.predict(r[None])[0]))
    note = f"law fitted on {len(swarm.members)} swarm models' losses, optimised under search.constraints"
    return Answer("law", r, swarm.cost.plus(Cost()), note, {"law_loss": loss})
