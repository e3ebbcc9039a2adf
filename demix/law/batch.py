"""Many fits of ``y = exp(a) + exp(b + x·t)`` solved together as one batched problem.

Every law demix fits has this shape: the mixing law (x = data ratios r, b = log k), the step law
L(S) = E + B·S^-β (x = log S, t = -β) and the size law L(N) = E + A·N^-α (x = log N, t = -α).
Parameters are (a, b, t) with a = log c and b = log k, so c, k > 0 without constraints; when the
rows of X sum to 1 (the mixing law), b is a common shift of t and is left out (``intercept=False``).

The loss is the summed Huber loss (as in Ye et al.). It is minimised by Levenberg-Marquardt on
iteratively reweighted least squares (a Huber residual beyond δ gets weight δ/|res|), for all
problems and all their starts at once: tensors are (P problems, S starts, ...), the normal
equations (P, S, p, p) are built with matmuls (JᵀWJ from its upper triangle) and solved by one
batched Cholesky. A step is kept per start only when it lowers that start's Huber loss, so every
start descends monotonically, and the best start of each problem (lowest training loss) wins. There is no Python loop over fits,
only over chunks of (problem, start) rows, which bound the working memory (``CHUNK``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Z_MAX = 60.0  # exponents are clipped here so a wild start cannot overflow
CHUNK = 1 << 18  # (row, point) numbers per working tensor: rows descend in chunks of CHUNK // n


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


@dataclass(frozen=True)
class _Problem:
    """What stays fixed while the starts descend: the design, the penalty, the Huber threshold."""

    Xa: Any  # (n, q) shared exponent design [1, x] (or x without intercept), or (P, n, q)
    XX: Any  # (n, q(q+1)/2) row-wise outer products of Xa, upper triangle, or (P, n, ·)
    tri: Any  # (q*q,) where each entry of the q × q block sits in the upper triangle
    Q: Any  # (p, p) Hessian of the ridge penalty
    eye: Any  # (p, p) a tiny diagonal that keeps the normal equations solvable
    delta: float
    ridge: float
    intercept: bool

    @property
    def shared(self) -> bool:
        return bool(self.Xa.ndim == 2)

    @property
    def first_t(self) -> int:  # column of t_1 in theta
        return 2 if self.intercept else 1


def _problem(Xin: Any, P: int, p: int, *, delta: float, ridge: float, intercept: bool) -> _Problem:
    """The design [1, x] (or x) with its outer products, and the penalty's Hessian Q."""
    torch = _torch()
    f64 = Xin.dtype
    n, d = Xin.shape[-2], Xin.shape[-1]
    q = d + 1 if intercept else d  # width of the exponent design: [1, x] or x
    if p != q + 1:
        raise ValueError(f"starts have {p} parameters, expected {q + 1}")
    ones = torch.ones(n, 1, dtype=f64)
    if Xin.ndim == 2:
        Xa = torch.cat([ones, Xin], dim=1) if intercept else Xin  # (n, q)
    else:
        Xa = torch.cat([ones.expand(P, n, 1), Xin], dim=2) if intercept else Xin  # (P, n, q)
    # JᵀWJ is symmetric: only its upper triangle is built (half the matmul at 17 domains).
    iu = torch.triu_indices(q, q)
    XX = Xa[..., iu[0]] * Xa[..., iu[1]]
    full = torch.empty(q, q, dtype=torch.long)  # (i, j) -> its place in the triangle, both halves
    full[iu[0], iu[1]] = torch.arange(iu.shape[1])
    full[iu[1], iu[0]] = torch.arange(iu.shape[1])
    # Penalty 0.5·ridge·|t|² (|t - mean t|² when b is folded into t); Q is its Hessian.
    Q = torch.zeros(p, p, dtype=f64)
    if intercept:
        Q[2:, 2:] = ridge * torch.eye(d, dtype=f64)
    else:
        Q[1:, 1:] = ridge * (torch.eye(d, dtype=f64) - 1.0 / d)
    return _Problem(Xa, XX, full.reshape(-1), Q, 1e-12 * torch.eye(p, dtype=f64), delta, ridge, intercept)


def _penalised(pr: _Problem, th: Any) -> Any:
    """(B, d) t, or t - mean(t): centred explicitly, not as θᵀQθ, which float32 cancellation can
    make negative for a huge common shift."""
    t = th[:, pr.first_t :]
    return t if pr.intercept else t - t.mean(-1, keepdim=True)


def _mm(a: Any, b: Any) -> Any:
    """(B, n) x (n, m) or (B, n, m) -> (B, m)."""
    return a @ b if b.ndim == 2 else _torch().bmm(a[:, None, :], b)[:, 0]


def _forward(pr: _Problem, th: Any, Xa: Any, y: Any, m: Any) -> tuple[Any, Any, Any]:
    """(g, res, loss) of parameters th (B, p): g = exp(z) (B, n), residuals (B, n), penalised
    Huber loss (B,)."""
    torch = _torch()
    z = th[:, 1:] @ Xa.T if Xa.ndim == 2 else torch.bmm(Xa, th[:, 1:, None])[..., 0]  # (B, n)
    g = z.clamp_(max=Z_MAX).exp_()  # in place: every (B, n) temporary is a pass over memory
    res = (g + torch.exp(th[:, 0:1])).sub_(y)
    ar = res.abs()
    q = ar.clamp(max=pr.delta)
    hub = ar.sub_(q, alpha=0.5).mul_(q)  # Huber: 0.5 res^2 within delta, delta (|res| - delta/2) beyond
    if m is not None:
        hub.mul_(m)
    return g, res, hub.sum(-1) + 0.5 * pr.ridge * (_penalised(pr, th) ** 2).sum(-1)


@dataclass
class _Active:
    """The (problem, start) rows still descending, with their current state."""

    rows: Any  # (B,) index into the flattened P·S rows
    theta: Any  # (B, p)
    g: Any  # (B, n) exp(z) at theta
    res: Any  # (B, n) residuals at theta
    loss: Any  # (B,)
    lam: Any  # (B,) Levenberg-Marquardt damping
    y: Any  # (B, n) targets
    m: Any  # (B, n) mask, or None
    Xa: Any  # design: shared (n, q), or (B, n, q) one per row
    XX: Any  # (n, q(q+1)/2) or (B, n, q(q+1)/2)

    def keep(self, keep: Any, shared: bool) -> None:
        """Drop the rows where ``keep`` is False."""
        self.rows, self.theta, self.g, self.res = (
            self.rows[keep],
            self.theta[keep],
            self.g[keep],
            self.res[keep],
        )
        self.loss, self.lam, self.y = self.loss[keep], self.lam[keep], self.y[keep]
        self.m = None if self.m is None else self.m[keep]
        if not shared:
            self.Xa, self.XX = self.Xa[keep], self.XX[keep]


def _lm_candidate(pr: _Problem, a: _Active) -> tuple[Any, Any]:
    """One damped Gauss-Newton step on the IRLS normal equations: (candidate theta (B, p), info (B,))."""
    torch = _torch()
    f64 = a.theta.dtype
    B, p = a.theta.shape
    w = (pr.delta / a.res.abs()).clamp_(max=1.0)  # IRLS weights (B, n); delta / 0 = inf -> 1
    if a.m is not None:
        w.mul_(a.m)
    wg = w * a.g
    ea = torch.exp(a.theta[:, 0])  # (B,) c
    A = torch.empty(B, p, p, dtype=f64)  # JᵀWJ: the Jacobian is [c, g·xa]
    q = p - 1
    A[:, 1:, 1:] = _mm(wg * a.g, a.XX)[:, pr.tri].reshape(B, q, q)
    cross = ea[:, None] * _mm(wg, a.Xa)
    A[:, 0, 1:] = cross
    A[:, 1:, 0] = cross
    A[:, 0, 0] = ea * ea * w.sum(-1)
    grad = torch.empty(B, p, dtype=f64)  # JᵀW res
    grad[:, 0] = ea * (w * a.res).sum(-1)
    grad[:, 1:] = _mm(wg.mul_(a.res), a.Xa)
    grad[:, pr.first_t :] += pr.ridge * _penalised(pr, a.theta)
    A += pr.Q  # the penalty's Hessian
    diag = torch.diagonal(A, dim1=-2, dim2=-1).clamp(min=1e-12)
    H = A + torch.diag_embed(a.lam[:, None] * diag) + pr.eye
    # H is symmetric positive definite: Cholesky (half LU's work); a failed one is a rejected step.
    Lc, info = torch.linalg.cholesky_ex(H)
    step = torch.cholesky_solve(grad[..., None], Lc)
    return a.theta - step[..., 0], info


def _lm_update(pr: _Problem, a: _Active, tol: float) -> Any:
    """Take the step where it lowers a row's loss, adapt the damping; (B,) True where converged."""
    torch = _torch()
    cand, info = _lm_candidate(pr, a)
    g2, res2, loss2 = _forward(pr, cand, a.Xa, a.y, a.m)
    ok = (loss2 < a.loss) & torch.isfinite(loss2) & (info == 0)  # a singular H: a larger lam
    gain = (a.loss - loss2) / a.loss.abs().clamp(min=1e-30)
    a.theta = torch.where(ok[:, None], cand, a.theta)
    a.g = torch.where(ok[:, None], g2, a.g)
    a.res = torch.where(ok[:, None], res2, a.res)
    a.loss = torch.where(ok, loss2, a.loss)
    a.lam = torch.where(ok, (a.lam / 3.0).clamp(min=1e-12), a.lam * 4.0)
    return (ok & (gain < tol)) | (a.lam > 1e8)


def _best(theta: Any, loss: Any, iterations: int, keep_all: bool) -> BatchFit:
    """The best start of each problem from every start's final theta (P, S, p) and loss (P, S)."""
    torch = _torch()
    lp = torch.where(torch.isfinite(loss), loss, torch.full_like(loss, float("inf")))
    best = lp.argmin(dim=1)  # (P,)
    idx = torch.arange(len(lp))
    th_all = theta.double()
    return BatchFit(
        th_all[idx, best].numpy().copy(),
        lp[idx, best].double().numpy().copy(),
        iterations,
        th_all.numpy().copy() if keep_all else None,
        lp.double().numpy().copy() if keep_all else None,
    )


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
    Yp = torch.as_tensor(np.asarray(Y, dtype=np.float64)).to(f64)  # (P, n)
    P = Yp.shape[0]
    Xin = torch.as_tensor(np.asarray(X, dtype=np.float64)).to(f64)  # (n, d) or (P, n, d)
    Mp = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=np.float64)).to(f64)
    st = torch.as_tensor(np.asarray(starts, dtype=np.float64)).to(f64)
    if st.ndim == 2:
        st = st.expand(P, *st.shape)  # (P, S, p)
    S, p = st.shape[1], st.shape[2]
    pr = _problem(Xin, P, p, delta=delta, ridge=ridge, intercept=intercept)
    # Rows are (problem, start) pairs, flattened, and descend in chunks of about CHUNK numbers per
    # (row, point) tensor: a whole-batch temporary (78,000 rows × 512 points = 160 MB) would be
    # mapped and zeroed anew by the allocator at every operation, which cost more system time
    # than the arithmetic; chunks stay in the heap and the cache.
    theta_all = st.reshape(P * S, p).clone()  # (P·S, p)
    loss_all = torch.empty(P * S, dtype=f64)
    n = Yp.shape[1]
    step = max(1, CHUNK // max(n, 1))
    iterations = 0
    for lo in range(0, P * S, step):
        sl = slice(lo, min(lo + step, P * S))
        iterations = max(iterations, _descend(pr, theta_all, loss_all, sl, S, Yp, Mp, max_iter, tol))
    return _best(theta_all.reshape(P, S, p), loss_all.reshape(P, S), iterations, keep_all)


def _descend(
    pr: _Problem,
    theta_all: Any,
    loss_all: Any,
    sl: slice,
    S: int,
    Yp: Any,
    Mp: Any,
    max_iter: int,
    tol: float,
) -> int:
    """LM on the rows ``sl`` of theta_all (P·S, p) until each converges; writes theta and loss back."""
    torch = _torch()
    rows = torch.arange(sl.start, sl.stop)
    pid = rows // S  # problem of each row
    Xa, XX = (pr.Xa, pr.XX) if pr.shared else (pr.Xa[pid], pr.XX[pid])
    y, m = Yp[pid], (None if Mp is None else Mp[pid])
    theta = theta_all[sl].clone()
    g, res, loss = _forward(pr, theta, Xa, y, m)
    lam = torch.full((len(rows),), 1e-3, dtype=theta.dtype)
    a = _Active(rows, theta, g, res, loss, lam, y, m, Xa, XX)
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        done = _lm_update(pr, a, tol)
        if bool(done.any()):  # a host sync per iteration: it is what lets converged rows leave
            theta_all[a.rows[done]] = a.theta[done]
            loss_all[a.rows[done]] = a.loss[done]
            a.keep(~done, pr.shared)
            if len(a.rows) == 0:
                break
    if len(a.rows):
        theta_all[a.rows] = a.theta
        loss_all[a.rows] = a.loss
    return iterations
