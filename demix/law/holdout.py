"""How well the law predicts mixtures it was not fitted on: seeded random hold-out splits (pure)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import StageError
from demix.law.mixing import fit
from demix.util.stats import spearman

if TYPE_CHECKING:
    from demix.config.law import LawConfig
    from demix.law.table import LawTable


def holdout_errors(
    table: LawTable, cfg: LawConfig, weights: np.ndarray, *, splits: int, holdout: float | int
) -> dict[str, Any]:
    """Fit on a random part of the rows, predict the rest, for several seeded splits.

    Args:
        table: measurements (rows with any missing loss are left out).
        cfg: law settings (seed: split k uses seed + k).
        weights: (V,) aggregation weights of the overall loss.
        splits: number of random splits.
        holdout: fraction (< 1) or number of rows held out per split.

    Returns:
        Per-split and mean MAE / relative error / Spearman of the overall and per-domain losses,
        and the held-out points (measured, predicted, domain) for a plot.

    Raises:
        StageError: too few complete rows to fit on what is left after the hold-out.
    """
    ok = np.flatnonzero(np.isfinite(table.L).all(axis=1))
    n = ok.size
    n_out = int(holdout) if holdout >= 1 else max(1, math.ceil(float(holdout) * n))
    if n - n_out < 3:
        raise StageError(f"{n} complete rows: too few to fit the law on {n - n_out} and hold out {n_out}")
    per_split, points = [], []
    for k in range(splits):
        perm = np.random.default_rng(cfg.seed + k).permutation(ok)
        tr, te = perm[n_out:], perm[:n_out]
        law = fit(
            table.R[tr], table.L[tr], cfg, domains=table.domains, targets=table.targets, aggregate=weights
        )
        P = law.predict(table.R[te])  # (n_out, V)
        agg_p, agg_m = P @ weights, table.L[te] @ weights
        per_split.append(
            {
                "fit_rows": table.rows[tr].tolist(),
                "held_out_rows": table.rows[te].tolist(),
                "mae": float(np.mean(np.abs(agg_p - agg_m))),
                "relative_error": float(np.mean(np.abs(agg_p - agg_m) / np.abs(agg_m))),
                "spearman": spearman(agg_p, agg_m),
                "mae_per_domain": float(np.mean(np.abs(P - table.L[te]))),
                "spearman_per_domain": {
                    t: spearman(P[:, i], table.L[te, i]) for i, t in enumerate(table.targets)
                },
            }
        )
        for j, row in enumerate(te):
            points += [
                {"split": k, "row": int(table.rows[row]), "domain": t,
                 "measured": float(table.L[row, i]), "predicted": float(P[j, i])}
                for i, t in enumerate(table.targets)
            ]  # fmt: skip
    mean = {
        key: float(np.nanmean([s[key] for s in per_split]))
        for key in ("mae", "relative_error", "spearman", "mae_per_domain")
    }
    return {"held_out": n_out, "fit_on": n - n_out, "splits": per_split, "mean": mean, "points": points}
