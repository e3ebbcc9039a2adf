"""Merge methods by name: ``linear`` and ``task_arithmetic`` natively (one fused weighted sum), every
other mergekit method (ties, dare_ties, della, breadcrumbs, ...) through mergekit's in-memory API.

Both native methods are the same kernel: task arithmetic base + Σ wᵢ(θᵢ − base) is the weighted sum
with the base as one more row of weight 1 − Σ wᵢ. mergekit methods are an optional extra (mergekit is
not a runtime dependency); asking for one without mergekit installed is a one-line error.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from demix.errors import DemixError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Method:
    """A merge method: its name, whether it needs the base model, and whether demix runs it natively."""

    name: str
    needs_base: bool
    native: bool


NATIVE = {
    "linear": Method("linear", needs_base=False, native=True),
    "task_arithmetic": Method("task_arithmetic", needs_base=True, native=True),
}


def mergekit_available() -> bool:
    return importlib.util.find_spec("mergekit") is not None


def get_method(name: str) -> Method:
    """The method called ``name``.

    Raises:
        DemixError: unknown method, or a mergekit method without mergekit installed.
    """
    if name in NATIVE:
        return NATIVE[name]
    if not mergekit_available():
        raise DemixError(
            f"merge method {name!r} needs mergekit (pip install 'demix[mergekit]'); "
            f"built in: {', '.join(NATIVE)}"
        )
    from mergekit.merge_methods import registry

    known = {m.spec.name: m for m in registry.registered_methods()}
    if name not in known:
        raise DemixError(f"unknown merge method {name!r} (known: {', '.join([*NATIVE, *sorted(known)])})")
    needs_base = str(getattr(known[name].spec.contract.base, "value", "")) == "required"
    return Method(name, needs_base=needs_base, native=False)


def check_weights(
    w: Sequence[float] | np.ndarray, names: Sequence[str], *, normalize: bool, method: str
) -> np.ndarray:
    """Validate merge weights and (by default) normalise them to sum 1.

    Raises:
        DemixError: wrong length, a value that is not finite or is negative, all zeros when
            normalising, or ``normalize=False`` with a method other than task arithmetic.
    """
    try:
        arr = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise DemixError(f"merge weights: {w!r} is not a vector of numbers") from None
    if arr.ndim != 1 or arr.shape[0] != len(names):
        raise DemixError(
            f"merge weights: expected {len(names)} values (one per component: {', '.join(names)}), "
            f"got {arr.size}"
        )
    for name, x in zip(names, arr, strict=True):
        if not math.isfinite(x):
            raise DemixError(f"merge weights: {name}={x} is not finite")
        if x < 0:
            raise DemixError(f"merge weights: {name}={x} is negative (weights must be >= 0)")
    if not normalize:
        if method == "linear":
            raise DemixError("merge weights: normalize=False is only for task_arithmetic (linear sums to 1)")
        return arr
    total = float(arr.sum())
    if total <= 0:
        raise DemixError(f"merge weights: all zero ({', '.join(names)}); at least one must be > 0")
    return arr / total


def native_row_weights(method: str, w: np.ndarray, has_base: bool) -> list[float]:
    """The weight of every row of the stacked buffer (components, then the base when loaded)."""
    rows = [float(x) for x in w]
    if method == "task_arithmetic":
        if not has_base:
            raise DemixError("task_arithmetic needs a base model (merge.base, or the run's base)")
        rows.append(1.0 - float(w.sum()))
    elif has_base:
        rows.append(0.0)
    return rows


def merge_with_mergekit(
    method: str,
    tensors: Sequence[torch.Tensor],
    w: np.ndarray,
    ids: Sequence[str],
    base_index: int | None,
    params: Mapping[str, Any],
    dtype: torch.dtype,
) -> torch.Tensor:
    """One tensor merged by a mergekit method, computed in fp32 (mergekit's task arithmetic family
    computes in the input dtype otherwise)."""
    import torch
    from mergekit.merge_methods import registry
    from mergekit.merge_methods.api import merge_tensors

    parameters = dict(params)
    if any(p.name == "weight" for p in registry.get(method).spec.parameters):
        parameters["weight"] = {i: float(x) for i, x in zip(ids, w, strict=False)}
    try:
        return merge_tensors(
            list(tensors),
            method,
            parameters=parameters,
            ids=list(ids),
            base_index=base_index,
            dtype=torch.float32,
            out_dtype=dtype,
        )
    except (ValueError, TypeError) as e:
        raise DemixError(f"mergekit method {method!r} rejected its inputs: {e}") from None
