"""The data-mixing law L_i(r) = c_i + k_i·exp(Σ_j t_ij r_j) (Ye et al., ICLR 2025): fit and predict.

One law per validation domain i, fitted on data ratios r (rows sum to 1) with the paper's recipe:
parameters log c, log k, t; summed Huber loss; a multi-start grid of log c × log k × random t
(10 × 20 × 30 = 6000 starts by default); the start with the lowest training loss wins. All
domains and starts are solved together by :func:`demix.law.batch.fit_batched`.

Because Σ_j r_j = 1, k_i and a constant shift of row t_i are interchangeable. Reported t is in
the gauge where each row has mean 0 (k absorbs the shift): t_ij < 0 means a larger share of j
lowers the loss on i relative to an average domain; t_ij - t_il compares two domains exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import DemixError
from demix.law.batch import fit_batched

if TYPE_CHECKING:
    from collections.abc import Iterator

    from demix.config.law import LawConfig


@dataclass
class MixingLaw:
    """A fitted law for V validation domains over K training domains.

    Attributes:
        domains: the K training domains (columns of r), canonical order.
        targets: the V validation domains (rows of t).
        c: (V,) the irreducible part of each domain's loss.
        k: (V,) scale of the mixture-dependent part.
        t: (V, K) interaction matrix, rows centred (see module docstring).
        train_loss: (V,) summed Huber loss of the chosen start.
        aggregate: (V,) weights of the overall loss, or ``None`` when unknown.
        info: how it was fitted (starts, delta, points, iterations).
    """

    domains: list[str]
    targets: list[str]
    c: np.ndarray
    k: np.ndarray
    t: np.ndarray
    train_loss: np.ndarray
    aggregate: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, R: np.ndarray) -> np.ndarray:
        """Per-domain losses (n, V) at data ratios R (n, K) or (K,)."""
        R = np.atleast_2d(np.asarray(R, dtype=np.float64))
        if R.shape[1] != len(self.domains):
            raise DemixError(f"mixtures have {R.shape[1]} columns, the law has {len(self.domains)} domains")
        z = R @ self.t.T + np.log(self.k)[None, :]
        return self.c[None, :] + np.exp(np.minimum(z, 700.0))

    def predict_aggregate(self, R: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Overall loss (n,) = Σ_i s_i L_i(r) with s the given or stored aggregation weights."""
        s = self.aggregate if weights is None else np.asarray(weights, dtype=np.float64)
        if s is None:
            raise DemixError("the law has no aggregation weights; give law.aggregate_weights")
        return self.predict(R) @ s

    def with_aggregate(self, weights: np.ndarray | None) -> MixingLaw:
        """The same law with other aggregation weights (normalised to sum 1)."""
        s = (
            None
            if weights is None
            else _normalised(np.asarray(weights, dtype=np.float64), "aggregate weights")
        )
        return MixingLaw(
            self.domains, self.targets, self.c, self.k, self.t, self.train_loss, s, dict(self.info)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "law": "L_i(r) = c_i + k_i * exp(sum_j t_ij r_j)",
            "domains": list(self.domains),
            "targets": list(self.targets),
            "c": self.c.tolist(),
            "k": self.k.tolist(),
            "t": self.t.tolist(),
            "train_loss": self.train_loss.tolist(),
            "aggregate": None if self.aggregate is None else self.aggregate.tolist(),
            "info": self.info,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MixingLaw:
        try:
            agg = doc.get("aggregate")
            return cls(
                list(doc["domains"]),
                list(doc["targets"]),
                np.asarray(doc["c"], dtype=np.float64),
                np.asarray(doc["k"], dtype=np.float64),
                np.asarray(doc["t"], dtype=np.float64).reshape(len(doc["targets"]), len(doc["domains"])),
                np.asarray(doc.get("train_loss", [np.nan] * len(doc["targets"])), dtype=np.float64),
                None if agg is None else np.asarray(agg, dtype=np.float64),
                dict(doc.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DemixError(f"not a mixing-law fit ({type(e).__name__}: {e})") from None


def _normalised(s: np.ndarray, what: str) -> np.ndarray:
    if np.any(~np.isfinite(s)) or np.any(s < 0) or s.sum() <= 0:
        raise DemixError(f"{what} must be non-negative with a positive sum, got {s.tolist()}")
    return s / s.sum()


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with n torch CPU threads (None: leave as is); small batched solves are fastest on one."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_starts(cfg: LawConfig, K: int, diagonal: int | None, rng: np.random.Generator) -> np.ndarray:
    """The paper's grid: log c × log k × random t (t_ii ~ -U(0,1), others ~ 0.1·U(0,1)) -> (S, K+2)."""
    lc = np.linspace(*cfg.log_c_grid[:2], int(cfg.log_c_grid[2]))
    lk = np.linspace(*cfg.log_k_grid[:2], int(cfg.log_k_grid[2]))
    ga, gb = np.meshgrid(lc, lk, indexing="ij")
    a = np.repeat(ga.ravel(), cfg.random_t)
    b = np.repeat(gb.ravel(), cfg.random_t)
    t = 0.1 * rng.uniform(0.0, 1.0, (a.size, K))
    if diagonal is not None:
        t[:, diagonal] = -rng.uniform(0.0, 1.0, a.size)
    return np.column_stack([a, b, t])


def fit(
    R: np.ndarray,
    L: np.ndarray,
    cfg: LawConfig,
    *,
    domains: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    aggregate: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> MixingLaw:
    """Fit one law per validation domain, all domains and starts in one batched solve.

    Args:
        R: (n, K) data ratios of the n measured mixtures; rows must sum to 1.
        L: (n, V) measured losses per validation domain (NaN: not measured, skipped).
        cfg: ``law`` settings (Huber delta, start grid, iterations, seed, threads).
        domains: names of the K training domains (default d0, d1, ...).
        targets: names of the V validation domains (default: ``domains`` when V == K).
        aggregate: (V,) weights of the overall loss, stored with the law.
        weights: (n,) weights of the mixtures in the loss (counts for a bootstrap; default 1).

    Returns:
        The fitted :class:`MixingLaw`.

    Raises:
        DemixError: shapes disagree, ratios don't sum to 1, or a domain has too few points.
    """
    R = np.atleast_2d(np.asarray(R, dtype=np.float64))
    L = np.asarray(L, dtype=np.float64)
    L = L[:, None] if L.ndim == 1 else L
    n, K = R.shape
    V = L.shape[1]
    if L.shape[0] != n:
        raise DemixError(f"{n} mixtures but {L.shape[0]} rows of losses")
    bad = np.flatnonzero(np.abs(R.sum(axis=1) - 1.0) > 1e-3)
    if bad.size:
        raise DemixError(f"mixture row {int(bad[0])} sums to {R[bad[0]].sum():.6g}, not 1")
    names = list(domains) if domains is not None else [f"d{j}" for j in range(K)]
    tnames = list(targets) if targets is not None else (names if V == K else [f"v{i}" for i in range(V)])
    mask = np.isfinite(L).astype(np.float64)
    if weights is not None:
        mask = mask * np.asarray(weights, dtype=np.float64)[:, None]
    few = np.flatnonzero((mask > 0).sum(axis=0) < 3)
    if few.size:
        raise DemixError(f"validation domain {tnames[few[0]]!r} has fewer than 3 measured mixtures")
    rng = np.random.default_rng(cfg.seed)
    starts = np.stack(
        [make_starts(cfg, K, names.index(tn) if tn in names else None, rng) for tn in tnames]
    )  # (V, S, K+2)
    # Σ_j r_j = 1, so log k is a common shift of t: fold it in (a start (a, b, t) -> (a, t + b)).
    starts = np.concatenate([starts[..., :1], starts[..., 2:] + starts[..., 1:2]], axis=-1)
    Y, M = np.nan_to_num(L).T, mask.T
    d, it, rg = cfg.huber_delta, cfg.max_iter, cfg.ridge
    n_starts, first_iters = int(starts.shape[1]), 0
    with torch_threads(cfg.threads):
        if cfg.polish and starts.shape[1] > cfg.polish:
            # Every start in float32, then the best `polish` per domain again in float64.
            first = fit_batched(
                R,
                Y,
                starts,
                delta=d,
                mask=M,
                max_iter=cfg.screen_iter,
                ridge=rg,
                single=True,
                keep_all=True,
                intercept=False,
            )
            assert first.all_theta is not None and first.all_loss is not None
            top = np.argsort(first.all_loss, axis=1, kind="stable")[:, : cfg.polish]
            first_iters = first.iterations
            starts = np.take_along_axis(first.all_theta, top[..., None], axis=1)
        res = fit_batched(R, Y, starts, delta=d, mask=M, max_iter=it, ridge=rg, intercept=False)
    th = res.theta
    m = th[:, 1:].mean(axis=1)
    law = MixingLaw(
        names,
        tnames,
        np.exp(th[:, 0]),
        np.exp(m),
        th[:, 1:] - m[:, None],
        res.loss,
        None,
        {
            "starts_per_domain": n_starts,
            "polished_in_float64": int(starts.shape[1]),
            "huber_delta": cfg.huber_delta,
            "mixtures": int(n),
            "iterations": int(first_iters + res.iterations),
            "seed": cfg.seed,
            "ridge": cfg.ridge,
        },
    )
    return law.with_aggregate(aggregate) if aggregate is not None else law


def learn_aggregate_weights(L: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Implicit aggregation: the validation mix s >= 0, Σ s = 1 that best explains an overall loss.

    When only the overall validation loss y (n,) is known for a validation set of unknown
    composition, but per-domain losses L (n, V) were measured, s solves min |L s - y|² on the
    simplex (non-negative least squares with the sum constraint as a heavily weighted row).
    """
    from scipy.optimize import nnls

    L = np.asarray(L, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(L).all(axis=1) & np.isfinite(y)
    scale = 1e3 * max(1.0, float(np.abs(L[ok]).max()))
    A = np.vstack([L[ok], scale * np.ones((1, L.shape[1]))])
    b = np.concatenate([y[ok], [scale]])
    s, _ = nnls(A, b)
    return _normalised(s, "learned aggregate weights")
