"""DeMix's iterative surrogate search as an Optuna sampler.

``demix`` is an Optuna sampler like the others, so its trials live in the same study as everyone
else's: a trial's ``demix:slot`` ticket says which round it belongs to; round 0 takes candidates from
the pool in random order, each later round waits for the previous rounds to finish, fits the LightGBM
surrogate on every completed trial and takes the top predictions not yet scored. Every worker
computes the same round from the same trials and seed, so workers on many machines split a round
without talking to each other.

Importing this module imports Optuna (the class derives from its ``BaseSampler``); the registry in
:mod:`demix.search.samplers` imports it only when a ``demix`` sampler is made.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import optuna

from demix.search import surrogate
from demix.search.samplers.context import SamplerContext
from demix.search.samplers.rounds import round_of
from demix.search.samplers.slotted import TicketSampler
from demix.search.storage import SLOT

_NO_SLOT = 1 << 30  # trials without a ticket (baselines) sort after every round


class DemixSampler(TicketSampler):
    """Rounds of candidates: random from the pool first, then the surrogate's top predictions.

    Example::

        study.sampler = DemixSampler(ctx)   # ctx: a SamplerContext; single objective only

    Args:
        ctx: seeds, simplex, constraints, pool prior and ``search.demix`` settings.
        poll_s: how often a worker waiting for an earlier round looks again.
    """

    def __init__(self, ctx: SamplerContext, poll_s: float = 0.5) -> None:
        super().__init__(ctx)
        self._poll_s = poll_s
        self._pool: np.ndarray | None = None
        self._rounds: dict[int, np.ndarray] = {}

    def pool(self) -> np.ndarray:
        """The candidate pool (built on first use; the same on every worker for the same seed)."""
        if self._pool is None:
            c = self._ctx
            self._pool = surrogate.candidate_pool(c.pool_prior, c.demix, c.constraints, c.seed)
        return self._pool

    def draw(self, study: optuna.Study, slot: int) -> dict[str, Any]:
        c = self._ctx
        r, j, start = round_of(slot, c.demix.rounds)
        cands = self._round(study, r, start)
        if j >= len(cands):  # the pool ran out of unseen candidates
            pool = self.pool()
            cands = pool[np.random.default_rng(c.seed + j).integers(len(pool), size=j + 1)]
        return c.simplex.params(cands[j])

    def _round(self, study: optuna.Study, r: int, start: int) -> np.ndarray:
        """The (size, k) candidates of round ``r``, whose first slot is ``start`` (cached)."""
        if r in self._rounds:
            return self._rounds[r]
        c = self._ctx
        pool = self.pool()
        if r == 0:
            order = np.random.default_rng(c.seed).permutation(len(pool))
            out = pool[order[: c.demix.rounds[0]]]
        else:
            trials = self._wait_for(study, start)
            W = np.array([t.user_attrs["w"] for t in trials])
            y = np.array([t.value for t in trials])
            size = c.demix.rounds[min(r, len(c.demix.rounds) - 1)]
            out = surrogate.propose(W, y, pool, size, c.demix, c.seed + r)
        self._rounds[r] = out
        return out

    def _wait_for(self, study: optuna.Study, start: int) -> list[optuna.trial.FrozenTrial]:
        """Block until every trial of the earlier rounds has finished; return the completed ones."""
        S = optuna.trial.TrialState
        while True:
            trials = study.get_trials(deepcopy=False)
            busy = [
                t
                for t in trials
                if t.state in (S.RUNNING, S.WAITING) and int(t.system_attrs.get(SLOT, _NO_SLOT)) < start
            ]
            if not busy:
                done = [t for t in trials if t.state == S.COMPLETE and "w" in t.user_attrs]
                return sorted(done, key=lambda t: t.number)
            # A no-op unless the storage keeps heartbeats; then a crashed worker's trial is failed
            # (and retried by the storage's callback) instead of blocking the round for ever.
            optuna.storages.fail_stale_trials(study)
            time.sleep(self._poll_s)
