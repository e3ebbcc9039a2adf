"""The overall validation loss: given weights, or learned when the validation mix is unknown.

A measurement table may carry the overall validation loss in a ``loss:overall`` column next to (or
instead of) the per-domain ``loss:<domain>`` columns. The law then predicts it as

- Σ_i s_i L_i(r) with the given weights s (``--loss-weights`` / ``law.aggregate_weights``), or
- Σ_i s_i L_i(r) with s learned from the measurements (:func:`learn_aggregate_weights`: the s on
  the simplex that best explains the measured overall loss by the measured per-domain losses), or
- when there are no per-domain losses, one law fitted to the overall loss itself.

The paper's implicit domain aggregation (Ye et al., ICLR 2025) models the overall loss as
Σ_k s_k L_k(r) over K latent domains, each following the law, with s_k learned, i.e.
c + Σ_k exp(b_k + t_k·r) (their small MLP with exp activation and a softmax output layer).
The second case is that model with the measured validation domains as the latent ones (fitted
stage-wise, so each L_i is pinned by its own measurements); the third is that model with K = 1.
K > 1 latent domains fitted to the overall loss alone overfit the fixture of the paper's own
measurements (20 mixtures, held-out MAE 0.040-0.048 for K = 3, 5, 10 vs 0.023 for the explicit
per-domain law; docs/perf/law.md), so demix does not offer it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from demix.errors import DemixError
from demix.law.mixing import MixingLaw, fit, learn_aggregate_weights

if TYPE_CHECKING:
    from demix.config.law import LawConfig

OVERALL = "overall"  # the ``loss:overall`` column: the overall validation loss, mix unknown


def split_overall(targets: Sequence[str], L: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(per-domain targets, their losses (n, V), overall losses (n,) or None) of a table."""
    names = list(targets)
    if OVERALL not in names:
        return names, L, None
    j = names.index(OVERALL)
    keep = [i for i in range(len(names)) if i != j]
    return [names[i] for i in keep], L[:, keep], L[:, j]


def fit_with_overall(
    R: np.ndarray,
    L: np.ndarray,
    y: np.ndarray,
    cfg: LawConfig,
    *,
    domains: Sequence[str],
    targets: Sequence[str],
    aggregate: np.ndarray | None = None,
) -> MixingLaw:
    """Fit the law when the overall loss y (n,) was measured; see the module docstring.

    Args:
        R: (n, K) data ratios.
        L: (n, V) per-domain losses (V may be 0).
        y: (n,) overall validation losses (NaN: not measured).
        cfg: ``law`` settings.
        domains, targets: names of the K training and V validation domains.
        aggregate: (V,) known weights of the overall loss; learned from y when ``None``.

    Returns:
        The law with aggregation weights; ``info["aggregate"]`` says where they came from and how
        well Σ_i s_i L_i matches the measured overall loss.

    Raises:
        DemixError: too few rows with the overall and every per-domain loss measured.
    """
    y = np.asarray(y, dtype=np.float64)
    L = np.asarray(L, dtype=np.float64).reshape(len(R), -1)
    if L.shape[1] == 0:
        law = fit(R, y[:, None], cfg, domains=domains, targets=[OVERALL], aggregate=np.ones(1))
        law.info["aggregate"] = {"source": f"law fitted to loss:{OVERALL}"}
        return law
    law = fit(R, L, cfg, domains=domains, targets=targets)
    both = np.isfinite(y) & np.isfinite(L).all(axis=1)
    if aggregate is None:
        if both.sum() < 2:
            raise DemixError(
                f"learning the weights of loss:{OVERALL} needs at least 2 rows with it and every "
                f"per-domain loss measured, got {int(both.sum())}"
            )
        s = learn_aggregate_weights(L[both], y[both])
        source = f"learned from loss:{OVERALL}"
    else:
        s = np.asarray(aggregate, dtype=np.float64)
        source = "given"
    law = law.with_aggregate(s)
    assert law.aggregate is not None
    mae = float(np.mean(np.abs(L[both] @ law.aggregate - y[both]))) if both.any() else None
    # How far the measured per-domain losses, so weighted, are from the measured overall loss.
    law.info["aggregate"] = {"source": source, "rows": int(both.sum()), "measured_mae": mae}
    return law
