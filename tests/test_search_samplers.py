"""The sampler registry: every name makes its sampler, DeMix's is a module-level Optuna sampler, and
importing the search does not import Optuna."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from demix.config.search import ConstraintsConfig, DemixSamplerConfig
from demix.errors import ConfigError
from demix.mixture.constraints import build_constraints
from demix.search.samplers import SAMPLERS, SamplerContext, make_sampler
from demix.search.simplex import Simplex

DOMAINS = ["prose", "code", "math"]


def _ctx(n_objectives: int = 1) -> SamplerContext:
    return SamplerContext(
        seed=0,
        worker_seed=1,
        n_objectives=n_objectives,
        simplex=Simplex.uniform(DOMAINS),
        constraints=build_constraints(ConstraintsConfig(), DOMAINS, general="prose", beta=0.5),
        pool_prior=np.full(3, 1 / 3),
        demix=DemixSamplerConfig(rounds=[4, 2], pool_size=200, top_k=4, num_boost_round=10),
    )


def test_registry_names_and_demix_sampler() -> None:
    import optuna

    from demix.search.samplers import DemixSampler

    assert list(SAMPLERS) == ["tpe", "gp", "cmaes", "qmc", "random", "demix"]
    s = make_sampler("demix", _ctx())
    assert isinstance(s, DemixSampler) and isinstance(s, optuna.samplers.BaseSampler)
    assert s.pool().shape[1] == len(DOMAINS)
    with pytest.raises(ConfigError, match="unknown sampler"):
        make_sampler("nope", _ctx())
    with pytest.raises(ConfigError, match="optimises one objective"):
        make_sampler("demix", _ctx(n_objectives=2))


def test_importing_the_search_leaves_optuna_unloaded() -> None:
    code = "import sys, demix.search; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
