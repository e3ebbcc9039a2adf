"""The report's figures, drawn with matplotlib's Agg backend; each function returns PNG bytes.

Pure apart from matplotlib: arrays and dataclasses in, PNG bytes out (no files).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from demix.recommend.choices import Candidate
from demix.recommend.table import TrialsTable
from demix.util.stats import spearman

COLORS = {"surrogate_topk": "#1f77b4", "best_trial": "#ff7f0e", "law": "#2ca02c", "prior": "#7f7f7f"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    _plt().close(fig)
    return buf.getvalue()


def mixture(domains: list[str], candidates: dict[str, Candidate], choice: str, prior_r: np.ndarray) -> bytes:
    """Data ratios of each candidate (the chosen one with its bootstrap interval) beside the prior."""
    plt = _plt()
    series = [
        (f"{n}{' (chosen)' if n == choice else ''}", c.r, c.interval, COLORS.get(n))
        for n, c in candidates.items()
    ]
    series.append(("token prior (as data ratios)", prior_r, None, COLORS["prior"]))
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.45 * len(domains) * len(series) / 2.5))
    h = 0.8 / len(series)
    y = np.arange(len(domains))
    for j, (label, r, iv, color) in enumerate(series):
        pos = y - 0.4 + h * (j + 0.5)
        xerr = None
        if iv is not None:
            xerr = np.abs(np.vstack([r - iv[:, 0], iv[:, 1] - r]))
        ax.barh(
            pos,
            r,
            height=h,
            label=label,
            color=color,
            xerr=xerr,
            capsize=2,
            alpha=0.95 if "chosen" in label else 0.6,
        )
    ax.set_yticks(y, domains)
    ax.invert_yaxis()
    ax.set_xlabel("share of training tokens (data ratio r)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(series), fontsize=8, frameon=False)
    return _png(fig)


def history(table: TrialsTable) -> bytes:
    """Objective per trial in order, the running best, and the baselines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    base = table.baseline != ""
    order = np.argsort(table.number)
    n, y = table.number[order], table.objective[order]
    ax.plot(n[~base[order]], y[~base[order]], "o", ms=3.5, color="#1f77b4", label="search trial")
    ax.plot(
        n,
        np.maximum.accumulate(np.where(np.isfinite(y), y, -np.inf)),
        "-",
        color="#d62728",
        lw=1.2,
        label="best so far",
    )
    bi = np.flatnonzero(base)
    ax.plot(table.number[bi], table.objective[bi], "x", ms=5, color="#7f7f7f", label="baseline")
    for i in bi:
        ax.annotate(str(table.baseline[i]), (table.number[i], table.objective[i]), xytext=(4, 0),
                    textcoords="offset points", fontsize=6, color="#555555", va="center")  # fmt: skip
    ax.set_xlabel("trial")
    ax.set_ylabel("objective (higher is better)")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def importances(table: TrialsTable) -> tuple[bytes, str]:
    """Which merge weights matter for the objective: Optuna's fANOVA, else |Spearman| per weight."""
    imp, method = _importances(table)
    plt = _plt()
    names = sorted(imp, key=lambda k: imp[k])
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.3 * len(names)))
    ax.barh(names, [imp[k] for k in names], color="#9467bd")
    ax.set_xlabel(f"importance ({method})")
    return _png(fig), method


def _importances(table: TrialsTable) -> tuple[dict[str, float], str]:
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        dist = optuna.distributions.FloatDistribution(0.0, 1.0)
        study = optuna.create_study(direction="maximize")
        for w, y in zip(table.W, table.objective, strict=True):
            study.add_trial(
                optuna.trial.create_trial(
                    params={f"w:{d}": float(v) for d, v in zip(table.domains, w, strict=True)},
                    distributions={f"w:{d}": dist for d in table.domains},
                    value=float(y),
                )
            )
        imp = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
        return {k: float(v) for k, v in imp.items()}, "Optuna fANOVA"
    except (ImportError, RuntimeError, ValueError):
        rho = {f"w:{d}": abs(spearman(table.W[:, i], table.objective)) for i, d in enumerate(table.domains)}
        total = sum(v for v in rho.values() if np.isfinite(v)) or 1.0
        return {
            k: (v / total if np.isfinite(v) else 0.0) for k, v in rho.items()
        }, "|Spearman| with the objective"


def groups(table: TrialsTable, top: int = 10) -> bytes:
    """Per-group objectives of the best trials (a heatmap: trials x groups)."""
    plt = _plt()
    idx = np.argsort(-np.where(np.isfinite(table.objective), table.objective, -np.inf), kind="stable")[:top]
    M = table.group_matrix()[idx]
    names = table.groups or ["objective"]
    labels = [
        f"#{int(table.number[i])}{' ' + str(table.baseline[i]) if table.baseline[i] else ''}" for i in idx
    ]
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(names), 0.8 + 0.32 * len(idx)))
    im = ax.imshow(M, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(idx)), labels)
    for (i, j), v in np.ndenumerate(M):
        ax.text(
            j,
            i,
            f"{v:.2f}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if v < np.nanmean(M) else "black",
        )
    fig.colorbar(im, ax=ax, fraction=0.05, label="group objective")
    return _png(fig)


def predicted_vs_measured(
    measured: np.ndarray, predicted: np.ndarray, labels: list[str], title: str
) -> bytes:
    """Scatter of predicted against measured values with the identity line, one colour per label."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    measured, predicted = np.asarray(measured, float), np.asarray(predicted, float)
    for lab in sorted(set(labels)):
        m = np.array([x == lab for x in labels])
        ax.plot(measured[m], predicted[m], "o", ms=4, label=lab)
    ok = np.isfinite(measured) & np.isfinite(predicted)
    if ok.any():
        lo, hi = min(measured[ok].min(), predicted[ok].min()), max(measured[ok].max(), predicted[ok].max())
        ax.plot([lo, hi], [lo, hi], "-", color="#999999", lw=0.8)
    ax.set_xlabel("measured")
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=9)
    if len(set(labels)) > 1:
        ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def heatmap(M: np.ndarray, rows: list[str], cols: list[str], title: str, label: str) -> bytes:
    """An annotated matrix (the law's t_ij: how much domain j's share moves domain i's loss)."""
    plt = _plt()
    M = np.asarray(M, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(1.4 + 0.8 * len(cols), 1.0 + 0.6 * len(rows)))
    v = np.nanmax(np.abs(M)) or 1.0
    im = ax.imshow(M, cmap="RdBu_r", vmin=-v, vmax=v)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), x in np.ndenumerate(M):
        ax.text(j, i, f"{x:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05, label=label)
    return _png(fig)


def proxy_vs_reference(
    group_scores: dict[str, dict[str, list[float]]], rho: dict[str, dict[str, float]]
) -> bytes:
    """Per group: each mixture's proxy score against its reference score (standardised), with rho."""
    plt = _plt()
    names = sorted(group_scores)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, g in zip(axes[0], names, strict=True):
        ax.plot(group_scores[g]["reference"], group_scores[g]["proxy"], "o", ms=4, color="#1f77b4")
        ax.set_title(f"{g}: Spearman {rho.get(g, {}).get('value', float('nan')):.2f}", fontsize=9)
        ax.set_xlabel("reference (trained) score")
        ax.set_ylabel("proxy (merged) score")
    return _png(fig)


def interaction_matrix(t: np.ndarray, targets: list[str], domains: list[str], title: str) -> bytes:
    """The law's t_ij, readable at RegMix's 17 training × 13 validation domains.

    A diverging colormap centred at 0 (blue: a larger share of domain j lowers the loss on i; red:
    raises it), limits at the 98th percentile of |t| off the self-pairs, so the large t_ii and
    any extreme cell do not wash out the interactions between domains (they saturate; the
    colorbar's arrows say so), values printed in the cells, and a frame round each cell where
    the validation domain is the training domain itself.
    """
    plt = _plt()
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    t = np.asarray(t, dtype=np.float64)
    V, K = t.shape
    fig, ax = plt.subplots(figsize=(max(5.0, 2.2 + 0.55 * K), max(3.0, 1.6 + 0.42 * V)))
    self_pair = np.array([[tg == d for d in domains] for tg in targets], dtype=bool).reshape(V, K)
    off = np.isfinite(t) & ~self_pair
    finite = np.abs(t[off if off.any() else np.isfinite(t)])
    v = float(np.percentile(finite, 98)) if finite.size else 1.0
    v = v if v > 0 else 1.0
    im = ax.imshow(t, cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=0.0, vmin=-v, vmax=v), aspect="auto")
    ax.set_xticks(range(K), domains, rotation=50, ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_yticks(range(V), targets, fontsize=7)
    ax.set_xlabel("training domain j (share r_j)")
    ax.set_ylabel("validation domain i (loss L_i)")
    for (i, j), x in np.ndenumerate(t):
        strong = np.isfinite(x) and abs(x) > 0.6 * v
        ax.text(j, i, f"{x:.2f}", ha="center", va="center", fontsize=5.5 if K > 10 else 7,
                color="white" if strong else "black")  # fmt: skip
        if targets[i] == domains[j]:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.2, ec="black"))
    ax.set_title(title, fontsize=8, wrap=True)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, extend="both", label="t_ij")
    return _png(fig)
