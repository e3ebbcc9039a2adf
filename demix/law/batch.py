"""Many fits of ``y = exp(a) + exp(b + x·t)`` solved together as one batched problem.

Every law demix fits has this shape: the mixing law (x = data ratios r, b = log k), the step law
L(S) = E + B·S^-β (x = log S, t = -β) and the size law L(N) = E + A·N^-α (x = log N, t = -α).
Parameters are (a, b, t) with a = log c and b = log k, so c, k > 0 without constraints; when the
rows of X sum to 1 (the mixing law), b is a common shift of t and is left out (``intercept=False``).

The loss is the summed Huber loss (as in Ye et al.). It is minimised by Levenberg-Marquardt on
iteratively reweighted least squares (a Huber residual beyond δ gets weight δ/|res|), for all
problems and all their starts at once: tensors are (P problems, S starts, ...), the normal
equations (P, S, p, p) are built with two matmuls and solved in one batched call. A step is kept
per start only when it lowers that start's Huber loss, so every start descends monotonically, and
the best start of each problem (lowest training loss) wins. There is no Python loop over fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Z_MAX = 60.0  # exponents are clipped here so a wild start cannot overflow


@dataclass(frozen=True)
class BatchFit:
    """Best start per problem.

    Attributes:
        theta: (P, p) parameters (a = log c, b = log k, t_1..t_d) of the best start.
        loss: (P,) its summed Huber loss on the training points.
        iterations: LM iterations run.
    """

    theta: np.ndarray
    loss: np.ndarray
    iterations: int
    all_theta: np.ndarray | None = None  # (P, S, p) every start's final parameters (keep_all=True)
    all_loss: np.ndarray | None = None  # (P, S)


def _torch() -> Any:
    import torch

    return torch


def predict(theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """exp(a) + exp(b + X t) for theta (..., p) and X (n, d) -> (..., n)."""
    theta = np.asarray(theta, dtype=np.float64)
    z = theta[..., 1:2] + np.einsum("...d,nd->...n", theta[..., 2:], np.asarray(X, dtype=np.float64))
    return np.exp(theta[..., 0:1]) + np.exp(np.minimum(z, Z_MAX))


def fit_batched(
    X: np.ndarray,
    Y: np.ndarray,
    starts: np.ndarray,
    *,
    delta: float,
    mask: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-9,
    ridge: float = 0.0,
    single: bool = False,
    keep_all: bool = False,
    intercept: bool = True,
) -> BatchFit:
    """Fit P problems from S starts each; return the best start of each problem.

    Args:
        X: (n, d) features shared by all problems, or (P, n, d) one set per problem.
        Y: (P, n) targets.
        starts: (P, S, p) or (S, p) initial parameters (a, b, t_1..t_d), p = d + 2; without
            ``intercept``, (a, t_1..t_d), p = d + 1.
        delta: Huber threshold.
        mask: (P, n) 1 for points that count (problems with fewer points pad with 0).
        max_iter: LM iterations; a start leaves the batch once its steps stop helping.
        tol: relative loss decrease below which a start counts as converged.
        ridge: L2 penalty 0.5·ridge·|t|^2 (0: the paper's unpenalised fit); without ``intercept``
            on the centred t, 0.5·ridge·|t - mean(t)|^2, so log k = mean(t) is not shrunk.
        single: compute in float32 (half the memory traffic; for a first pass over many starts
            whose best ones are then polished in float64).
        keep_all: also return every start's final parameters and loss.
        intercept: fit b. Mixing laws pass False: their rows of X sum to 1, so b and a common
            shift of t are the same direction (an exactly singular Jacobian) and b is folded into t.

    Returns:
        The best start per problem, chosen by training Huber loss.
    """
    torch = _torch()
    f64 = torch.float32 if single else torch.float64
    Yp = torch.as_tensor(np.asarray(Y, dtype=np.float64)).to(f64)
    P, n = Yp.shape
    Xin = torch.as_tensor(np.asarray(X, dtype=np.float64)).to(f64)
    shared = Xin.ndim == 2
    d = Xin.shape[-1]
    Mp = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=np.float64)).to(f64)
    st = torch.as_tensor(np.asarray(starts, dtype=np.float64)).to(f64)
    if st.ndim == 2:
        st = st.expand(P, *st.shape)
    S, p = st.shape[1], st.shape[2]
    # Rows are (problem, start) pairs, flattened; converged rows leave the working set.
    theta_all = st.reshape(P * S, p).clone()
    pid_all = torch.arange(P).repeat_interleave(S)
    ones = torch.ones(n, 1, dtype=f64)
    q = d + 1 if intercept else d  # width of the exponent design: [1, x] or x
    if p != q + 1:
        raise ValueError(f"starts have {p} parameters, expected {q + 1}")
    if shared:
        Xa_s = torch.cat([ones, Xin], dim=1) if intercept else Xin  # (n, q)
        XX_s = (Xa_s[:, :, None] * Xa_s[:, None, :]).reshape(n, q * q)
    else:
        Xa_p = torch.cat([ones.expand(P, n, 1), Xin], dim=2) if intercept else Xin  # (P, n, q)
        XX_p = (Xa_p[..., :, None] * Xa_p[..., None, :]).reshape(P, n, q * q)
    # Penalty 0.5·ridge·|t|² (|t - mean t|² when b is folded into t); Q is its Hessian.
    Q = torch.zeros(p, p, dtype=f64)
    if intercept:
        Q[2:, 2:] = ridge * torch.eye(d, dtype=f64)
    else:
        Q[1:, 1:] = ridge * (torch.eye(d, dtype=f64) - 1.0 / d)
    eye = 1e-12 * torch.eye(p, dtype=f64)
    first_t = 2 if intercept else 1

    def penalised(th: Any) -> Any:  # t, or t - mean(t): centred explicitly, not as θᵀQθ, which
        t = th[:, first_t:]  # float32 cancellation can make negative for a huge common shift
        return t if intercept else t - t.mean(-1, keepdim=True)

    def design(pid: Any) -> tuple[Any, Any]:
        if shared:
            return Xa_s, XX_s
        return Xa_p[pid], XX_p[pid]

    def mm(a: Any, b: Any) -> Any:  # (B, n) x (n, m) or (B, n, m) -> (B, m)
        return a @ b if b.ndim == 2 else torch.bmm(a[:, None, :], b)[:, 0]

    def forward(th: Any, Xa: Any, y: Any, m: Any) -> tuple[Any, Any, Any]:
        z = th[:, 1:] @ Xa.T if Xa.ndim == 2 else torch.bmm(Xa, th[:, 1:, None])[..., 0]  # (B, n)
        g = torch.exp(z.clamp(max=Z_MAX))
        res = torch.exp(th[:, 0:1]) + g - y
        ar = res.abs()
        q = ar.clamp(max=delta)
        hub = q * (ar - 0.5 * q)  # Huber: 0.5 res^2 within delta, delta (|res| - delta/2) beyond
        if m is not None:
            hub = hub * m
        return g, res, hub.sum(-1) + 0.5 * ridge * (penalised(th) ** 2).sum(-1)

    rows = torch.arange(P * S)
    theta, pid = theta_all[rows], pid_all[rows]
    Xa, XX = design(pid)
    y, m = Yp[pid], (None if Mp is None else Mp[pid])
    g, res, loss = forward(theta, Xa, y, m)
    loss_all = loss.clone()
    lam = torch.full((len(rows),), 1e-3, dtype=f64)
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        w = torch.clamp(delta / res.abs(), max=1.0)  # IRLS weights (B, n); delta / 0 = inf -> 1
        if m is not None:
            w = w * m
        ea = torch.exp(theta[:, 0])
        B = len(rows)
        A = torch.empty(B, p, p, dtype=f64)
        A[:, 1:, 1:] = mm(w * g * g, XX).reshape(B, q, q)
        cross = ea[:, None] * mm(w * g, Xa)
        A[:, 0, 1:] = cross
        A[:, 1:, 0] = cross
        A[:, 0, 0] = ea * ea * w.sum(-1)
        grad = torch.empty(B, p, dtype=f64)
        grad[:, 0] = ea * (w * res).sum(-1)
        grad[:, 1:] = mm(w * g * res, Xa)
        grad[:, first_t:] += ridge * penalised(theta)
        A += Q  # the penalty's Hessian
        diag = torch.diagonal(A, dim1=-2, dim2=-1).clamp(min=1e-12)
        H = A + torch.diag_embed(lam[:, None] * diag) + eye
        step, info = torch.linalg.solve_ex(H, grad[..., None])
        cand = theta - step[..., 0]
        g2, res2, loss2 = forward(cand, Xa, y, m)
        ok = (loss2 < loss) & torch.isfinite(loss2) & (info == 0)  # a singular H: a larger lam
        gain = (loss - loss2) / loss.abs().clamp(min=1e-30)
        theta = torch.where(ok[:, None], cand, theta)
        g = torch.where(ok[:, None], g2, g)
        res = torch.where(ok[:, None], res2, res)
        loss = torch.where(ok, loss2, loss)
        lam = torch.where(ok, (lam / 3.0).clamp(min=1e-12), lam * 4.0)
        done = (ok & (gain < tol)) | (lam > 1e8)
        if bool(done.any()):
            theta_all[rows[done]] = theta[done]
            loss_all[rows[done]] = loss[done]
            keep = ~done
            rows, theta, g, res, loss, lam = (
                rows[keep],
                theta[keep],
                g[keep],
                res[keep],
                loss[keep],
                lam[keep],
            )
            pid, y, m = pid[keep], y[keep], (None if m is None else m[keep])
            if not shared:
                Xa, XX = Xa[keep], XX[keep]
            if len(rows) == 0:
                break
    if len(rows):
        theta_all[rows] = theta
        loss_all[rows] = loss
    lp = loss_all.reshape(P, S)
    lp = torch.where(torch.isfinite(lp), lp, torch.full_like(lp, float("inf")))
    best = lp.argmin(dim=1)
    idx = torch.arange(P)
    th_all = theta_all.reshape(P, S, p).double()
    return BatchFit(
        th_all[idx, best].numpy().copy(),
        lp[idx, best].double().numpy().copy(),
        iterations,
        th_all.numpy().copy() if keep_all else None,
        lp.double().numpy().copy() if keep_all else None,
    )
