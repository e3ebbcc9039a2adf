"""Everything a search worker needs, built the same way in the driver and in every worker process."""

from __future__ import annotations

import socket
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.config import ExperimentConfig
from demix.errors import DataError
from demix.evaluate.scores import group_objectives, objective
from demix.mixture import weights_to_ratios
from demix.mixture.constraints import Constraints, constraints_for
from demix.run import RunDir
from demix.search.samplers import SamplerContext, make_sampler
from demix.search.scoring import Score
from demix.search.simplex import U_HIGH, Simplex
from demix.search.storage import StorageSpec, resolve_storage
from demix.search.surrogate import pool_prior

if TYPE_CHECKING:
    import optuna


def domains_and_counts(cfg: ExperimentConfig, run: RunDir) -> tuple[list[str], np.ndarray]:
    """Canonical domain order and token counts: the manifest's, or config's for brought components.

    With ``merge.components`` (components from elsewhere) there may be no prepared data; then the
    order is the config's and the counts come from ``search.token_counts``.
    """
    from demix.data.manifest import Manifest, token_counts

    m = Manifest.load(run) if run.manifest.is_file() else None
    names = m.names if m is not None else cfg.domains
    found = token_counts(cfg, run, names, manifest=m)
    counts = found if found is not None else np.zeros(len(names))
    if not np.all(counts > 0):
        missing = [d for d, c in zip(names, counts, strict=True) if c <= 0]
        raise DataError(
            f"no token counts for {', '.join(missing)}: run `demix prepare`, or give "
            "search.token_counts when bringing your own components"
        )
    return names, counts


@dataclass(frozen=True)
class SurrogateInputs:
    """What DeMix's surrogate reads besides the trials: domains, token counts, constraints, pool prior."""

    domains: list[str]
    token_counts: np.ndarray
    constraints: Constraints
    pool_prior: np.ndarray


def surrogate_inputs(cfg: ExperimentConfig, run: RunDir) -> SurrogateInputs:
    """The surrogate's inputs built the way the search builds them, for stages that refit it later
    (the recommendation) without re-deriving the search's context.

    Raises:
        DemixError: missing token counts, infeasible constraints.
    """
    domains, counts = domains_and_counts(cfg, run)
    return SurrogateInputs(
        domains,
        counts,
        constraints_for(cfg, domains, counts),
        pool_prior(counts, cfg.search.demix.prior_power),
    )


@dataclass
class SearchContext:
    """The resolved search: domains, parameterisation, constraints, storage and objective shape."""

    cfg: ExperimentConfig
    run: RunDir
    domains: list[str]
    token_counts: np.ndarray
    simplex: Simplex
    constraints: Constraints
    spec: StorageSpec
    study_name: str
    n_trials: int

    @property
    def prior(self) -> np.ndarray:
        """The token-count prior baseline (token shares)."""
        return self.token_counts / self.token_counts.sum()

    @property
    def pool_prior(self) -> np.ndarray:
        return pool_prior(self.token_counts, self.cfg.search.demix.prior_power)

    @property
    def multi(self) -> bool:
        return self.cfg.search.objectives == "groups"

    def ratios(self, w: np.ndarray) -> np.ndarray:
        return weights_to_ratios(w, self.domains, self.cfg.general, self.cfg.train.beta)

    def sampler(self, n_objectives: int, worker: int, n_existing: int) -> optuna.samplers.BaseSampler:
        key = f"{self.cfg.search.seed}:{worker}:{n_existing}:{socket.gethostname()}"
        ctx = SamplerContext(
            seed=self.cfg.search.seed,
            worker_seed=zlib.crc32(key.encode()) & 0x7FFFFFFF,
            n_objectives=n_objectives,
            simplex=self.simplex,
            constraints=self.constraints,
            pool_prior=self.pool_prior,
            demix=self.cfg.search.demix,
        )
        return make_sampler(self.cfg.search.sampler, ctx)

    def weights(self, trial: optuna.Trial) -> np.ndarray:
        """Suggest the raw draws and map them to feasible weights."""
        u = np.array([trial.suggest_float(n, 0.0, U_HIGH) for n in self.simplex.names])
        w = self.simplex.to_weights(u)
        w = np.where(w < 1e-12, 0.0, w)  # float dust from the inverse map of a dropped domain
        return self.constraints.repair(w / w.sum())

    def values(self, score: Score, baselines: dict[str, Score], groups: list[str]) -> list[float]:
        if self.multi:
            per = group_objectives(score, baselines)
            return [per.get(g, float("nan")) for g in groups]
        return [objective(score, baselines)]

    def attrs(self, w: np.ndarray, score: Score, baselines: dict[str, Score]) -> dict[str, Any]:
        """The user attributes every trial records."""
        return {
            "w": [float(v) for v in w],
            "r": [float(v) for v in self.ratios(w)],
            "metrics": {k: m.value for k, m in score.metrics.items()},
            "bpb": dict(score.bpb),
            "objective": objective(score, baselines),
            "objectives": group_objectives(score, baselines),
            "merge_s": score.merge_s,
            "eval_s": score.eval_s,
            "feasible": bool(self.constraints.feasible(w)[0]),
        }


def build_context(
    cfg: ExperimentConfig,
    run: RunDir,
    *,
    workers: int = 1,
    storage: str | None = None,
    n_trials: int | None = None,
) -> SearchContext:
    """Resolve domains, constraints (checked feasible), parameterisation and storage.

    Raises:
        DemixError: infeasible constraints, missing token counts, a bad storage URL.
    """
    s = cfg.search
    domains, counts = domains_and_counts(cfg, run)
    constraints = constraints_for(cfg, domains, counts)
    if s.parameterization == "prior_dirichlet":
        simplex = Simplex.around_prior(domains, counts, s.prior_concentration)
    else:
        simplex = Simplex.uniform(domains)
    spec = resolve_storage(run.search, storage or s.storage, workers)
    return SearchContext(
        cfg,
        run,
        domains,
        counts,
        simplex,
        constraints,
        spec,
        s.study_name or cfg.name,
        n_trials or s.n_trials,
    )
