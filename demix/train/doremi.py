"""DoReMi's domain-weight update (Xie et al. 2023, "DoReMi: Optimizing Data Mixtures Speeds Up
Language Model Pretraining", Algorithm 1): pure numpy, no torch, no files.

A proxy model is trained with group DRO against a fixed reference model. After each step the
domain weights α move by exponentiated gradient on the per-domain excess loss, then are mixed with
the uniform distribution; the answer is α averaged over all steps.

What follows the paper and its code (github.com/sangmichaelxie/doremi, ``doremi/trainer.py``,
``DoReMiTrainer.update_domain_weights``):

- per-domain excess loss λ_i = mean over the domain-i tokens of the step's batch (all
  micro-batches, all ranks) of the *per-token* clipped excess ``max(ℓ_proxy − ℓ_ref, 0)``: clipped
  token by token, then averaged (the repo's ``torch.clip(scores[domain_mask], min=0).mean()``);
- a domain with no token in the batch keeps its previous λ (the repo's ``perdomain_scores``);
- α' ∝ α ⊙ exp(η λ) normalised (the repo does it with a logsumexp; here ``exp(η(λ − max λ))``,
  the same numbers without a log of a zero weight), then α = (1−ε) α' + ε/k;
- the averaged weights are the running mean of α after each step's update (the repo's
  ``avg_domain_weights``, one term per update; with ``update_every > 1`` one term per step, the
  weights in force counted for every step they were used).

The weights cover the domains the job samples (its support); ``k`` is their number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def exponentiated_gradient(alpha: np.ndarray, excess: np.ndarray, eta: float, epsilon: float) -> np.ndarray:
    """One DoReMi weight update: ``(1−ε)·normalise(α ⊙ exp(η λ)) + ε/k``.

    Args:
        alpha: the current weights (k,), on the simplex.
        excess: the per-domain clipped excess losses λ (k,), >= 0.
    """
    a = np.asarray(alpha, dtype=np.float64)
    lam = np.asarray(excess, dtype=np.float64)
    raised = a * np.exp(eta * (lam - lam.max()))  # the shift cancels in the normalisation
    raised = raised / raised.sum()
    return (1.0 - epsilon) * raised + epsilon / a.size


@dataclass
class DoReMiState:
    """The domain weights of a DoReMi run and what their next update needs; all vectors (k,).

    Example::

        state = DoReMiState.start(np.array([0.5, 0.3, 0.2]), eta=1.0, epsilon=1e-3)
        state.end_step(excess_sum=np.array([3.0, 1.0, 0.0]), tokens=np.array([64, 64, 0]))
        state.weights, state.averaged
    """

    weights: np.ndarray  # α in force now (the next step trains with it)
    eta: float
    epsilon: float
    update_every: int
    excess: np.ndarray  # λ of the last update (kept for domains the window had no token of)
    weight_sum: np.ndarray  # Σ over steps of α after that step's update
    steps: int = 0
    updates: int = 0
    window_excess: np.ndarray | None = None  # Σ clipped excess over tokens since the last update
    window_tokens: np.ndarray | None = None  # tokens per domain since the last update

    @classmethod
    def start(cls, weights: np.ndarray, *, eta: float, epsilon: float, update_every: int = 1) -> DoReMiState:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"DoReMi weights must be finite, >= 0 and not all 0, got {w.tolist()}")
        k = w.size
        return cls(w / w.sum(), eta, epsilon, update_every, np.zeros(k), np.zeros(k))

    def update(self, excess: np.ndarray) -> np.ndarray:
        """Apply one update with per-domain excess losses λ; returns the new weights."""
        self.excess = np.asarray(excess, dtype=np.float64).copy()
        self.weights = exponentiated_gradient(self.weights, self.excess, self.eta, self.epsilon)
        self.updates += 1
        return self.weights

    def end_step(self, excess_sum: np.ndarray, tokens: np.ndarray) -> bool:
        """Record one optimizer step: the clipped excess summed over its tokens and its tokens per
        domain; update every ``update_every`` steps. Returns whether the weights were updated."""
        k = self.weights.size
        if self.window_excess is None or self.window_tokens is None:
            self.window_excess, self.window_tokens = np.zeros(k), np.zeros(k)
        self.window_excess = self.window_excess + np.asarray(excess_sum, dtype=np.float64)
        self.window_tokens = self.window_tokens + np.asarray(tokens, dtype=np.float64)
        self.steps += 1
        updated = self.steps % self.update_every == 0
        if updated:
            seen = self.window_tokens > 0
            lam = np.where(seen, self.window_excess / np.maximum(self.window_tokens, 1.0), self.excess)
            self.update(lam)
            self.window_excess, self.window_tokens = None, None
        self.weight_sum = self.weight_sum + self.weights
        return updated

    @property
    def averaged(self) -> np.ndarray:
        """DoReMi's answer: α averaged over the steps so far (the starting α before any step)."""
        return self.weight_sum / self.steps if self.steps else self.weights.copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; floats round-trip exactly, so a resumed run continues bit for bit."""

        def vec(v: np.ndarray | None) -> list[float] | None:
            return None if v is None else [float(x) for x in v]

        return {
            "weights": vec(self.weights),
            "eta": self.eta,
            "epsilon": self.epsilon,
            "update_every": self.update_every,
            "excess": vec(self.excess),
            "weight_sum": vec(self.weight_sum),
            "steps": self.steps,
            "updates": self.updates,
            "window_excess": vec(self.window_excess),
            "window_tokens": vec(self.window_tokens),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DoReMiState:
        def arr(v: Any) -> np.ndarray | None:
            return None if v is None else np.asarray(v, dtype=np.float64)

        return cls(
            weights=np.asarray(data["weights"], dtype=np.float64),
            eta=float(data["eta"]),
            epsilon=float(data["epsilon"]),
            update_every=int(data["update_every"]),
            excess=np.asarray(data["excess"], dtype=np.float64),
            weight_sum=np.asarray(data["weight_sum"], dtype=np.float64),
            steps=int(data["steps"]),
            updates=int(data["updates"]),
            window_excess=arr(data.get("window_excess")),
            window_tokens=arr(data.get("window_tokens")),
        )


def step_token_weights(alpha: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Per-token loss weight of each domain so that the step's loss is Σ_i α_i · mean_i / Σ α_present.

    ``mean_i`` is the mean per-token loss over the domain-i tokens of the step's batch (``tokens``
    of them): the proxy objective of DoReMi's Eq. 1, every domain's loss normalised by how many of
    its tokens the batch drew. (The repo's code weighs tokens by α_i/p_i over the sampling ratios p
    instead, the same in expectation; its issue #9 reports that the per-domain normalisation gives
    smoother weights.) Domains absent from the batch get 0; the rest are renormalised so the loss
    keeps its scale.
    """
    a = np.asarray(alpha, dtype=np.float64)
    n = np.asarray(tokens, dtype=np.float64)
    present = n > 0
    mass = a[present].sum()
    if mass <= 0:
        return np.where(present, 1.0 / max(n.sum(), 1.0), 0.0)  # only zero-weight domains drawn
    return np.where(present, a / np.maximum(n, 1.0) / mass, 0.0)


@dataclass
class DoReMiSettings:
    """What a job trains its DoReMi weights with (built by :mod:`demix.train.weighting`)."""

    reference: Path  # the reference model's HF checkpoint directory
    reference_hash: str  # its weights' sha256: part of the job's spec
    eta: float
    epsilon: float
    update_every: int
    start: np.ndarray  # starting α in manifest order, normalised, 0 outside the job's support

    def spec(self, names: list[str]) -> dict[str, Any]:
        """The part of a job's spec these settings add (static jobs add nothing)."""
        return {
            "method": "doremi",
            "eta": self.eta,
            "epsilon": self.epsilon,
            "update_every": self.update_every,
            "start": {n: round(float(w), 12) for n, w in zip(names, self.start, strict=True) if w > 0},
            "reference": self.reference_hash,
        }
