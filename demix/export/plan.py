"""Tokens per source and epochs for a target run size (pure).

A data team trains ``target_tokens`` tokens on data ratios r: source i contributes r_i * target
tokens, which is r_i * target / available_i passes (epochs) over the tokens it has. Above
``max_epochs`` repetition starts to hurt (Muennighoff et al.; Olmix caps at 4), so the plan carries
a warning naming the source and the largest target that keeps every source under the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from demix.config.base import format_count

SCHEMA = "demix.recommended_mixture/v1"


def round_shares(r: np.ndarray, digits: int = 6) -> np.ndarray:
    """Round shares to ``digits`` decimals so that they still sum to exactly 1 (largest remainder)."""
    r = np.clip(np.asarray(r, dtype=np.float64), 0.0, None)
    r = r / r.sum()
    scale = 10**digits
    units = np.floor(r * scale).astype(np.int64)
    rest = scale - int(units.sum())
    order = np.argsort(-(r * scale - units), kind="stable")
    units[order[:rest]] += 1
    return units / scale


def split_tokens(r: np.ndarray, total: int) -> np.ndarray:
    """Integer tokens per source proportional to r that sum to ``total`` exactly (largest remainder)."""
    r = np.asarray(r, dtype=np.float64)
    exact = r / r.sum() * total
    out = np.floor(exact).astype(np.int64)
    rest = int(total - out.sum())
    order = np.argsort(-(exact - out), kind="stable")
    out[order[:rest]] += 1
    return out


@dataclass
class TokenPlan:
    """What training on r for ``target_tokens`` means for each source.

    Attributes:
        domains: source names in canonical order.
        ratios: (K,) data ratios rounded to sum to 1.
        tokens: (K,) tokens drawn from each source (sums to ``target_tokens``).
        available: (K,) tokens each source has (``None`` when unknown).
        epochs: (K,) passes over each source (``None`` when availability is unknown).
        max_target: the largest target that keeps every source within ``max_epochs``.
        warnings: one sentence per problem.
    """

    domains: list[str]
    ratios: np.ndarray
    target_tokens: int
    max_epochs: float
    tokens: np.ndarray
    available: np.ndarray | None
    epochs: np.ndarray | None
    max_target: int | None
    warnings: list[str] = field(default_factory=list)

    @property
    def over_cap(self) -> list[str]:
        if self.epochs is None:
            return []
        return [d for d, e in zip(self.domains, self.epochs, strict=True) if e > self.max_epochs]


def token_plan(
    domains: list[str],
    r: np.ndarray,
    target_tokens: int,
    available: np.ndarray | None,
    max_epochs: float,
) -> TokenPlan:
    """Tokens per source and epochs for a target size, with a warning per source above the cap.

    Args:
        domains: source names. r: (K,) data ratios. target_tokens: size of the run the mixture is for.
        available: (K,) training tokens each source has (from the prepare manifest), or ``None``.
        max_epochs: passes over a source above which the plan warns.
    """
    ratios = round_shares(r)
    tokens = split_tokens(ratios, int(target_tokens))
    warnings: list[str] = []
    epochs = max_target = None
    if available is not None:
        avail = np.asarray(available, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            epochs = np.where(tokens > 0, tokens / np.maximum(avail, 1e-300), 0.0)
            epochs = np.where((tokens > 0) & (avail <= 0), np.inf, epochs)
            limits = np.where(ratios > 0, max_epochs * avail / np.maximum(ratios, 1e-300), np.inf)
        max_target = int(np.floor(limits.min())) if np.isfinite(limits.min()) else None
        for d, e, t, a in zip(domains, epochs, tokens, avail, strict=True):
            if e > max_epochs:
                warnings.append(
                    f"{d}: {format_count(t)} tokens from {format_count(a)} available is {e:.1f} epochs, "
                    f"above export.max_epochs={max_epochs:g}"
                )
        if warnings and max_target is not None:
            warnings.append(
                f"at most {format_count(max_target)} target tokens keep every source within "
                f"{max_epochs:g} epochs (--tokens {format_count(max_target)}); or add data for the sources above"
            )
    return TokenPlan(
        domains, ratios, int(target_tokens), max_epochs, tokens, available, epochs, max_target, warnings
    )
