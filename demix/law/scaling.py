"""Nested scaling laws: small, short runs predict long, large ones before the mixing law is fitted.

As in Ye et al.'s pipeline: per mixture, model size and validation domain, the step law
L(S) = E + B·S^-β extrapolates the loss curve to the target number of steps; then, per mixture
and domain, the size law L(N) = E + A·N^-α extrapolates those values to the target model size.
Both have the batched solver's shape exp(a) + exp(b + x·t) with x = log(S / S0) and t = -β, so
every curve and start is fitted in one batched solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demix.errors import DemixError
from demix.law.batch import fit_batched


@dataclass(frozen=True)
class PowerLaws:
    """P fitted curves L(x) = E + B·(x/x0)^-β.

    Attributes:
        E, B, beta: (P,) parameters (E, B > 0).
        x0: the scale x was divided by (keeps the fit well conditioned).
        loss: (P,) summed Huber loss of each fit.
    """

    E: np.ndarray
    B: np.ndarray
    beta: np.ndarray
    x0: float
    loss: np.ndarray

    def predict(self, x: float | np.ndarray) -> np.ndarray:
        """Each curve at x (scalar -> (P,), (m,) -> (P, m))."""
        xs = np.asarray(x, dtype=np.float64) / self.x0
        if xs.ndim == 0:
            return self.E + self.B * xs ** (-self.beta)
        return self.E[:, None] + self.B[:, None] * xs[None, :] ** (-self.beta[:, None])


def fit_power_laws(x: np.ndarray, y: np.ndarray, *, delta: float = 0.02, max_iter: int = 200) -> PowerLaws:
    """Fit L = E + B·x^-β to P curves at once.

    Args:
        x: (P, n) positive abscissae (steps or parameters); NaN pads shorter curves.
        y: (P, n) losses; NaN where not measured.
        delta: Huber threshold.

    Raises:
        DemixError: a curve has fewer than 3 measured points (3 parameters).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (np.nan_to_num(x) > 0)
    few = np.flatnonzero(ok.sum(axis=1) < 3)
    if few.size:
        raise DemixError(f"curve {int(few[0])} has {int(ok[few[0]].sum())} points; a power law needs 3")
    x0 = float(np.exp(np.mean(np.log(x[ok]))))
    X = np.where(ok, np.log(np.where(ok, x, 1.0) / x0), 0.0)[..., None]  # (P, n, 1)
    Y = np.where(ok, y, 0.0)
    ymin = np.array([y[i, ok[i]].min() for i in range(len(y))])
    yrng = np.array([max(np.ptp(y[i, ok[i]]), 1e-3) for i in range(len(y))])
    frac, amp, beta = np.meshgrid([0.3, 0.6, 0.9], [0.3, 1.0, 3.0], [0.1, 0.3, 0.6, 1.2], indexing="ij")
    a = np.log(ymin[:, None] * frac.ravel()[None, :])  # E below the smallest loss
    b = np.log(yrng[:, None] * amp.ravel()[None, :])
    t = -np.broadcast_to(beta.ravel()[None, :], a.shape)
    starts = np.stack([a, b, t], axis=-1)  # (P, 36, 3)
    res = fit_batched(X, Y, starts, delta=delta, mask=ok.astype(np.float64), max_iter=max_iter)
    th = res.theta
    return PowerLaws(np.exp(th[:, 0]), np.exp(th[:, 1]), -th[:, 2], x0, res.loss)


@dataclass(frozen=True)
class Extrapolated:
    """Per-mixture losses extrapolated to the target (steps, size)."""

    R: np.ndarray  # (m, K) the distinct mixtures
    L: np.ndarray  # (m, V) their extrapolated per-domain losses
    step: float | None
    size: float | None
    curves: int  # step-law fits made


def nested_extrapolate(
    R: np.ndarray,
    L: np.ndarray,
    step: np.ndarray | None,
    size: np.ndarray | None,
    *,
    target_step: float | None,
    target_size: float | None,
    delta: float = 0.02,
) -> Extrapolated:
    """Extrapolate measurements at several (step, size) to one (target_step, target_size) per mixture.

    Args:
        R: (n, K) ratios of every measurement row; rows with the same ratios are one mixture.
        L: (n, V) per-domain losses.
        step, size: (n,) training step and model size of each row (``None``: not varied).
        target_step: steps to extrapolate to (``None``: rows must already be at one step).
        target_size: model size to extrapolate to (``None``: rows must be of one size).

    Returns:
        One row per mixture, losses at the target.

    Raises:
        DemixError: a curve has too few points, or the data vary in steps/size without a target.
    """
    R = np.asarray(R, dtype=np.float64)
    L = np.asarray(L, dtype=np.float64)
    n, V = L.shape
    st = np.full(n, np.nan) if step is None else np.asarray(step, dtype=np.float64)
    sz = np.full(n, np.nan) if size is None else np.asarray(size, dtype=np.float64)
    mix, mix_id = np.unique(np.round(R, 9), axis=0, return_inverse=True)
    mix_id = mix_id.ravel()
    sizes = np.unique(sz[np.isfinite(sz)]) if np.isfinite(sz).any() else np.array([np.nan])
    curves = 0
    # Step law: one value per (mixture, size) at target_step.
    at_step = np.full((len(mix), len(sizes), V), np.nan)
    for si, s in enumerate(sizes):
        rows_s = np.isnan(sz) if np.isnan(s) else sz == s
        if target_step is None:
            if len(np.unique(st[rows_s & np.isfinite(st)])) > 1:
                raise DemixError("rows have several steps: give a target step (law.target_step / --step)")
            for m in range(len(mix)):
                sel = rows_s & (mix_id == m)
                if sel.any():
                    at_step[m, si] = np.nanmean(L[sel], axis=0)
            continue
        keys = [m for m in range(len(mix)) if np.sum(rows_s & (mix_id == m)) > 0]
        width = max(int(np.sum(rows_s & (mix_id == m))) for m in keys)
        xs = np.full((len(keys) * V, width), np.nan)
        ys = np.full((len(keys) * V, width), np.nan)
        for q, m in enumerate(keys):
            sel = np.flatnonzero(rows_s & (mix_id == m))
            for v in range(V):
                xs[q * V + v, : sel.size] = st[sel]
                ys[q * V + v, : sel.size] = L[sel, v]
        usable = (np.isfinite(xs) & np.isfinite(ys)).sum(axis=1) >= 3
        if usable.any():
            pl = fit_power_laws(xs[usable], ys[usable], delta=delta)
            curves += int(usable.sum())
            pred = np.full(len(keys) * V, np.nan)
            pred[usable] = pl.predict(float(target_step))
            for q, m in enumerate(keys):
                at_step[m, si] = pred[q * V : (q + 1) * V]
    if target_size is None:
        if len(sizes) > 1:
            raise DemixError("rows have several model sizes: give a target size (law.target_size / --size)")
        out = at_step[:, 0]
    else:
        if len(sizes) < 3:
            raise DemixError(f"the size law needs 3 model sizes, the data have {len(sizes)}")
        xs = np.broadcast_to(sizes[None, None, :], (len(mix), V, len(sizes))).reshape(-1, len(sizes))
        ys = at_step.transpose(0, 2, 1).reshape(-1, len(sizes))
        usable = (np.isfinite(ys)).sum(axis=1) >= 3
        out_flat = np.full(len(ys), np.nan)
        if usable.any():
            out_flat[usable] = fit_power_laws(xs[usable], ys[usable], delta=delta).predict(float(target_size))
        out = out_flat.reshape(len(mix), V)
    keep = np.isfinite(out).all(axis=1)
    return Extrapolated(mix[keep], out[keep], target_step, target_size, curves)


def at_target(
    R: np.ndarray,
    L: np.ndarray,
    step: np.ndarray | None,
    size: np.ndarray | None,
    *,
    target_step: float | None,
    target_size: float | None,
    delta: float = 0.02,
) -> Extrapolated:
    """Rows at the target (steps, size): measured ones where they exist, else nested extrapolation.

    A target size that the data contain selects those rows (no size law); a target step that every
    selected mixture was measured at selects those rows (no step law); otherwise the step and size
    laws extrapolate.
    """
    R, L = np.asarray(R, dtype=np.float64), np.asarray(L, dtype=np.float64)
    keep = np.ones(len(R), dtype=bool)
    if target_size is not None and size is not None and np.any(np.isclose(size, target_size)):
        keep &= np.isclose(size, target_size)
        target_size = None
    if target_step is not None and step is not None:
        here = keep & np.isclose(step, target_step)
        mixes = {tuple(np.round(r, 9)) for r in R[keep]}
        if here.any() and {tuple(np.round(r, 9)) for r in R[here]} == mixes:
            keep, target_step = here, None

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a, dtype=np.float64)[keep]

    return nested_extrapolate(
        R[keep],
        L[keep],
        pick(step),
        pick(size),
        target_step=target_step,
        target_size=target_size,
        delta=delta,
    )
