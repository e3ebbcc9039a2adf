"""The mixing law fitted on the references' losses vs the one fitted on the proxies' losses.

Both laws see the same mixtures r; if proxies stand in for trained models, the two laws should
predict the same ordering of mixtures and put the optimum in the same place. Reported: per-domain
Spearman between the two laws' predictions on the mixtures, the interaction matrices' correlation
(rows centred), and each law's fit error on its own data. The references choose the law's
exponent p by cross-validation and the proxies' law uses the same p.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from demix.config import ExperimentConfig
from demix.util.stats import spearman


def _losses(rows: list[dict[str, Any]], key: str, domains: list[str]) -> np.ndarray:
    return np.array(
        [[float(row[key]["bpb"].get(d, np.nan)) for d in domains] for row in rows], dtype=np.float64
    )


def _centred(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    return t - t.mean(axis=1, keepdims=True)


def compare(
    cfg: ExperimentConfig, domains: list[str], R: np.ndarray, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Fit the law on reference and on proxy losses over the same mixtures and compare them.

    Returns:
        ``{"skipped": reason}`` when losses are missing or there are too few mixtures; otherwise
        per-domain measured Spearman (proxy vs reference losses), the laws' prediction Spearman,
        t-matrix correlation and each law's mean absolute fit error.
    """
    Lp, Lr = _losses(rows, "proxy", domains), _losses(rows, "reference", domains)
    ok = np.isfinite(Lp).all(axis=1) & np.isfinite(Lr).all(axis=1)
    out: dict[str, Any] = {
        "loss_spearman": {d: spearman(Lp[ok, i], Lr[ok, i]) for i, d in enumerate(domains)},
    }
    if ok.sum() < len(domains) + 2:
        out["skipped"] = (
            f"{int(ok.sum())} mixtures with losses on every domain; the law needs at least {len(domains) + 2}"
        )
        return out
    from demix.errors import DemixError
    from demix.law import fit

    try:
        # The references choose the exponent and the proxies use it: t is compared across the two,
        # so each is one form (select), not the default's ensemble of forms (whose t is its
        # heaviest form's only).
        ref = fit(
            R[ok], Lr[ok], cfg.law.model_copy(update={"combine": "select"}), domains=domains, targets=domains
        )
        same = cfg.law.model_copy(update={"exponents": (ref.exponent,)})
        fits = {"proxy": fit(R[ok], Lp[ok], same, domains=domains, targets=domains), "reference": ref}
    except DemixError as e:
        out["skipped"] = f"the law could not be fitted: {e}"
        return out
    pred = {k: np.asarray(f.predict(R[ok]), dtype=np.float64) for k, f in fits.items()}
    out["prediction_spearman"] = {
        d: spearman(pred["proxy"][:, i], pred["reference"][:, i]) for i, d in enumerate(domains)
    }
    # Rows centred: the comparison is of relative effects (which domain helps i more), the part of
    # t that is identified in both forms (for p = 1 a row shift is k; for p < 1 nearly so).
    tp, tr = (_centred(f.t).ravel() for f in fits.values())
    out["t_correlation"] = float(np.corrcoef(tp, tr)[0, 1]) if tp.std() > 0 and tr.std() > 0 else float("nan")
    out["fit_mae"] = {
        "proxy": float(np.mean(np.abs(pred["proxy"] - Lp[ok]))),
        "reference": float(np.mean(np.abs(pred["reference"] - Lr[ok]))),
    }
    out["t"] = {k: np.asarray(f.t, dtype=np.float64).tolist() for k, f in fits.items()}
    out["exponent"] = ref.exponent
    return out
