"""Validation: train real reference models on sampled mixtures and measure how well proxies rank them.

Public API::

    validate(cfg, run, mixtures=None) -> dict     # validation/validation.json
    fidelity(proxy, reference, ...) -> Fidelity    # DeMix's metrics (pure)
    top_spearman(...), recovery(...), task_table(json rows), metric_table(Metric rows)

Modules: ``metrics`` (pure fidelity metrics and bootstrap), ``stage`` (sampling, reference training,
scoring, resumable), ``lawcompare`` (the law fitted on references vs on proxies).
"""

from __future__ import annotations

from demix.validate.metrics import (
    Fidelity,
    TaskTable,
    fidelity,
    metric_table,
    recovery,
    task_table,
    top_k,
    top_spearman,
)
from demix.validate.stage import sample_weights, validate

__all__ = [
    "Fidelity",
    "TaskTable",
    "fidelity",
    "metric_table",
    "recovery",
    "sample_weights",
    "task_table",
    "top_k",
    "top_spearman",
    "validate",
]
