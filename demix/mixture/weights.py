"""Merge weights w, data ratios r, and the one ``name=value,...`` syntax for both.

A component is trained on (1-beta)*D_i + beta*G, so a proxy merged with weights w stands for the data
mixture r = beta*e_G + (1-beta)*w when the general data G is itself a candidate (../DESIGN.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from demix.errors import DemixError


def parse_weights(
    text: str, domains: Sequence[str], *, normalize: bool = False, what: str = "--weights"
) -> np.ndarray:
    """Parse ``name=value,name=value`` into a vector in the canonical domain order.

    Missing domains get 0. Values must be finite and >= 0. With ``normalize`` they are scaled to sum 1.

    Raises:
        DemixError: an unknown name, a repeated name, a value that is not a finite number >= 0, or an
            all-zero vector when normalising.
    """
    out = np.zeros(len(domains), dtype=np.float64)
    seen: set[str] = set()
    index = {d: i for i, d in enumerate(domains)}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if "=" not in item:
            raise DemixError(f"{what}: {item!r} is not name=value")
        name, raw = (s.strip() for s in item.split("=", 1))
        if name not in index:
            raise DemixError(f"{what}: unknown domain {name!r} (domains: {', '.join(domains)})")
        if name in seen:
            raise DemixError(f"{what}: {name!r} given twice")
        seen.add(name)
        try:
            value = float(raw)
        except ValueError:
            raise DemixError(f"{what}: {name}={raw!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise DemixError(f"{what}: {name}={raw} must be a finite number >= 0")
        out[index[name]] = value
    if normalize:
        total = out.sum()
        if total <= 0:
            raise DemixError(f"{what}: weights sum to 0")
        out /= total
    return out


def format_weights(values: Sequence[float] | np.ndarray, domains: Sequence[str], digits: int = 4) -> str:
    """The inverse of :func:`parse_weights`."""
    return ",".join(f"{d}={float(v):.{digits}g}" for d, v in zip(domains, values, strict=True))


def as_dict(values: Sequence[float] | np.ndarray, domains: Sequence[str]) -> dict[str, float]:
    return {d: float(v) for d, v in zip(domains, values, strict=True)}


def from_mapping(mapping: Mapping[str, float], domains: Sequence[str]) -> np.ndarray:
    return np.array([float(mapping.get(d, 0.0)) for d in domains], dtype=np.float64)


def weights_to_ratios(w: np.ndarray, domains: Sequence[str], general: str, beta: float) -> np.ndarray:
    """Data ratios r = beta*e_G + (1-beta)*w that a proxy merged with weights w stands for."""
    w = np.asarray(w, dtype=np.float64)
    r = (1.0 - beta) * w
    r[list(domains).index(general)] += beta
    return r


def ratios_to_weights(r: np.ndarray, domains: Sequence[str], general: str, beta: float) -> np.ndarray:
    """Inverse of :func:`weights_to_ratios`; raises when r has less general data than beta allows."""
    r = np.asarray(r, dtype=np.float64)
    g = list(domains).index(general)
    if r[g] < beta - 1e-9:
        raise DemixError(
            f"mixture has {r[g]:.3f} {general} data; with beta={beta} proxies cannot represent less than {beta}"
        )
    w = r.copy()
    w[g] -= beta
    return np.clip(w / (1.0 - beta), 0.0, None)
