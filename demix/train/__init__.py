"""Training: the base model, one component per candidate, and reference models on any mixture.

Example::

    from demix.train import train_base, train_components
    train_base(cfg, run)                    # runs/<name>/models/base
    paths = train_components(cfg, run)      # {domain: runs/<name>/models/components/<domain>}

Every checkpoint is an ordinary Hugging Face directory (``AutoModelForCausalLM.from_pretrained``)
with ``train_log.jsonl``, ``eval_log.jsonl`` and ``train_summary.json`` beside the weights. With
``train.domain_weights: doremi`` (or :func:`train_doremi`, a DoReMi proxy) the domain weights are
tuned online against a reference model and logged to ``domain_weights.jsonl``.
"""

from __future__ import annotations

from demix.train.doremi import DoReMiState, exponentiated_gradient
from demix.train.heldout import DomainLoss, heldout_loss, loss_table, window_starts
from demix.train.jobs import (
    component_ratios,
    doremi_weights,
    read_summary,
    train_base,
    train_components,
    train_doremi,
    train_reference,
)
from demix.train.model import ModelShape, build_model, hf_config, model_shape
from demix.train.schedule import lr_at

__all__ = [
    "DoReMiState",
    "DomainLoss",
    "ModelShape",
    "build_model",
    "component_ratios",
    "doremi_weights",
    "exponentiated_gradient",
    "heldout_loss",
    "hf_config",
    "loss_table",
    "lr_at",
    "model_shape",
    "read_summary",
    "train_base",
    "train_components",
    "train_doremi",
    "train_reference",
    "window_starts",
]
