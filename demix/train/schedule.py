"""The learning-rate schedule: linear warmup, then cosine decay to a floor (DeMix: 20% of the peak)."""

from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, peak: float, *, warmup_steps: int, min_ratio: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    Warmup rises linearly to ``peak`` over ``warmup_steps`` (step 0 already gets ``peak/warmup``, so
    no step is wasted at lr 0); the cosine then reaches ``min_ratio·peak`` at the last step.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    floor = peak * min_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps_for(total_steps: int, warmup_frac: float) -> int:
    """Warmup length in steps; at least one step of warmup whenever ``warmup_frac`` > 0."""
    if warmup_frac <= 0:
        return 0
    return min(total_steps - 1, max(1, round(total_steps * warmup_frac))) if total_steps > 1 else 0
