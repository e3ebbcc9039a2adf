"""What every sampler factory is given: seeds, the objective count, the simplex and the DeMix settings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demix.config.search import DemixSamplerConfig
from demix.mixture.constraints import Constraints
from demix.search.simplex import Simplex


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler may need: seeds, objective count, the simplex, constraints and the pool prior."""

    seed: int  # the study's seed (shared by workers: qmc, demix)
    worker_seed: int  # differs per worker and per resume, so random draws are not repeated
    n_objectives: int
    simplex: Simplex
    constraints: Constraints
    pool_prior: np.ndarray
    demix: DemixSamplerConfig
