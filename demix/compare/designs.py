"""Which mixtures the swarm trains (pure numpy): RegMix's Dirichlet around the token prior, or the
Data Mixing Laws' double-diminishing proportions.

Double-diminishing (Ye et al., ICLR 2025): each domain may take the proportions
g·⌊m_d/g⌋·2^-s for s = 0, 1, …, ``halvings`` and 0, where m_d is the domain's cap (what its
tokens allow) and g the granularity (1/16 in the paper); a mixture is one proportion per domain
summing to 1. Halving from the cap covers small proportions densely, where the loss moves most.
Every valid combination is enumerated when there are few; with many domains they are drawn one
domain at a time in a random order, the last taking the remainder when that is one of its
proportions. Both orders are seeded and prefix-stable: the first rows do not depend on how many are
asked for, so a larger swarm extends a smaller one (and a stopped one resumes).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from demix.errors import DemixError

Feasible = Callable[[np.ndarray], bool]

ENUMERATE_LIMIT = 200_000  # combinations walked exhaustively; above, sequential draws
_TOL = 1e-9


def dirichlet_around(prior: np.ndarray, concentration: float, n: int, seed: int) -> np.ndarray:
    """(n, K) mixtures ~ Dirichlet(concentration · K · prior); the first rows do not depend on n."""
    alpha = np.maximum(concentration * len(prior) * np.asarray(prior, dtype=np.float64), 1e-3)
    rng = np.random.default_rng(seed)
    return np.stack([rng.dirichlet(alpha) for _ in range(n)]) if n else np.zeros((0, len(prior)))


def diminishing_proportions(caps: np.ndarray, granularity: float, halvings: int) -> list[np.ndarray]:
    """Per domain, its allowed proportions ascending: 0 and g·⌊m_d/g⌋·2^-s, s = 0..halvings.

    A cap below one granule keeps the cap itself as the top proportion (the formula would give 0
    and drop the domain from every mixture).
    """
    out = []
    for m in np.clip(np.asarray(caps, dtype=np.float64), 0.0, 1.0):
        top = granularity * math.floor(m / granularity + _TOL)
        top = top if top > 0 else float(m)
        vals = {0.0} | ({top * 2.0**-s for s in range(halvings + 1)} if top > 0 else set())
        out.append(np.array(sorted(vals)))
    return out


def _enumerate(props: list[np.ndarray]) -> np.ndarray:
    """Every combination (one proportion per domain) summing to 1, depth-first with pruning."""
    K = len(props)
    most_after = np.concatenate([np.cumsum([p[-1] for p in props[::-1]])[::-1][1:], [0.0]])
    rows: list[list[float]] = []

    def walk(d: int, prefix: list[float], total: float) -> None:
        if d == K:
            if abs(total - 1.0) <= _TOL:
                rows.append(list(prefix))
            return
        for v in props[d]:
            t = total + float(v)
            if t > 1.0 + _TOL:
                break
            if t + most_after[d] >= 1.0 - _TOL:
                walk(d + 1, [*prefix, float(v)], t)

    walk(0, [], 0.0)
    return np.array(rows, dtype=np.float64).reshape(-1, K)


def _sequential(props: list[np.ndarray], n: int, rng: np.random.Generator, ok: Feasible) -> np.ndarray:
    """Up to n distinct mixtures drawn domain by domain in random order, the last taking the rest."""
    K = len(props)
    seen: set[tuple[float, ...]] = set()
    rows: list[np.ndarray] = []
    for _ in range(2000 * max(n, 1)):
        if len(rows) == n:
            break
        r, left = np.zeros(K), 1.0
        order = rng.permutation(K)
        for d in order[:-1]:
            fits = props[d][props[d] <= left + _TOL]
            r[d] = float(rng.choice(fits))
            left -= r[d]
        last = int(order[-1])
        if not np.any(np.abs(props[last] - left) <= _TOL):
            continue
        r[last] = max(left, 0.0)
        key = tuple(np.round(r, 9))
        if key not in seen and ok(r):
            seen.add(key)
            rows.append(r)
    return np.array(rows, dtype=np.float64).reshape(-1, K)


def double_diminishing(
    caps: np.ndarray, granularity: float, halvings: int, n: int, seed: int, feasible: Feasible | None = None
) -> np.ndarray:
    """(≤ n, K) distinct double-diminishing mixtures (fewer when fewer exist), each passing
    ``feasible`` (the run's constraints) when given.

    Raises:
        DemixError: no combination of the domains' proportions sums to 1 (caps too small).
    """
    props = diminishing_proportions(caps, granularity, halvings)
    rng = np.random.default_rng(seed)
    ok = feasible or (lambda r: True)
    if math.prod(len(p) for p in props) <= ENUMERATE_LIMIT:
        every = _enumerate(props)
        every = every[[ok(r) for r in every]] if len(every) else every
        R = every[rng.permutation(len(every))[:n]]
    else:
        R = _sequential(props, n, rng, ok)
    if len(R) == 0 and n > 0:
        raise DemixError(
            "compare.swarm: no double-diminishing mixture sums to 1 within the constraints, with caps "
            f"{np.round(caps, 4).tolist()} (granularity {granularity:g}, {halvings} halvings); use compare.swarm.sampler: dirichlet "
            "or a smaller compare.swarm.granularity"
        )
    return R
