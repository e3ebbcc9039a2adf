"""Config sections for the model architecture and the trainer (base, components, references)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from demix.config.base import Count, StrictModel


class ModelConfig(StrictModel):
    """A Hugging Face causal LM built from config (Qwen3 or Llama family), seeded init."""

    family: Literal["qwen3", "llama"] = "qwen3"
    hidden_size: int = Field(default=2048, gt=0)
    num_layers: int = Field(default=28, gt=0)
    num_heads: int = Field(default=16, gt=0)
    num_kv_heads: int = Field(default=8, gt=0)
    head_dim: int | None = Field(default=None, gt=0)  # default hidden_size // num_heads
    intermediate_size: int = Field(default=6144, gt=0)
    max_position_embeddings: int = Field(default=4096, gt=0)
    rope_theta: float = Field(default=1_000_000.0, gt=0)
    tie_embeddings: bool = True
    init_std: float = Field(default=0.02, gt=0)
    pad_vocab_multiple: int = Field(default=64, gt=0)  # embedding rows rounded up to this (GPU-friendly)

    @model_validator(mode="after")
    def _heads(self) -> ModelConfig:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}"
            )
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}"
            )
        return self


class DoReMiConfig(StrictModel):
    """Online domain weights by DoReMi (Xie et al. 2023): group DRO against a reference model.

    Used by every training job when ``train.domain_weights`` is ``doremi``, and by
    :func:`demix.train.train_doremi` (a DoReMi proxy) whatever that key says.
    """

    eta: float = Field(default=1.0, gt=0)  # exponentiated-gradient step size (DoReMi: 1.0)
    epsilon: float = Field(default=1e-3, ge=0, le=1)  # smoothing with the uniform distribution
    update_every: int = Field(default=1, gt=0)  # optimizer steps between weight updates
    reference: Path | None = None  # the reference model's HF checkpoint directory
    # Starting weights by domain name (normalised); default: the job's data ratios (the reference
    # mixture). DoReMi's users: weights proportional to domain size keep the weights off one-hot.
    weights: dict[str, Annotated[float, Field(ge=0)]] | None = None


class TrainConfig(StrictModel):
    """One trainer for the base model, the components and reference models.

    Budgets are in tokens. The schedule is linear warmup then cosine decay to ``min_lr_ratio`` of the
    peak (DeMix: 20%).
    """

    beta: float = Field(default=0.5, ge=0, lt=1)  # general-data share when training components
    seq_len: int = Field(default=2048, gt=0)
    micro_batch_size: int = Field(default=8, gt=0)  # sequences per device per micro-step
    grad_accum: int = Field(default=1, gt=0)
    lr: float = Field(default=3e-4, gt=0)
    base_lr: float | None = Field(default=None, gt=0)  # peak LR for the base model (default: lr)
    min_lr_ratio: float = Field(default=0.2, ge=0, le=1)
    warmup_frac: float = Field(default=0.02, ge=0, lt=1)
    weight_decay: float = Field(default=0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = Field(default=1.0, gt=0)
    base_tokens: Count = 50_000_000_000
    component_tokens: Count = 30_000_000_000
    reference_tokens: Count | None = None  # default: component_tokens (same budget as components)
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    compile: bool = False  # torch.compile the model
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_every: int = Field(default=200, gt=0)  # steps between held-out loss evaluations
    eval_tokens: Count = 262_144  # held-out tokens per domain per evaluation
    checkpoint_every: int = Field(default=500, gt=0)  # steps between resumable checkpoints
    log_every: int = Field(default=10, gt=0)
    spike_factor: float = Field(default=10.0, gt=1)  # stop when loss > spike_factor * running mean
    seed: int = 0
    threads: int | None = Field(default=None, gt=0)  # torch CPU threads (default: torch's choice)
    progress: bool = True
    save_dtype: Literal["auto", "float32", "bfloat16"] = (
        "auto"  # final weights; auto: bf16 if trained in bf16
    )
    keep_checkpoint: bool = False  # keep the last resumable checkpoint (with optimizer state) after finishing
    domain_weights: Literal["static", "doremi"] = "static"  # static: the job's ratios, as sampled
    doremi: DoReMiConfig = Field(default_factory=DoReMiConfig)

    @model_validator(mode="after")
    def _doremi_reference(self) -> TrainConfig:
        if self.domain_weights == "doremi" and self.doremi.reference is None:
            raise ValueError("train.doremi.reference is required when train.domain_weights is doremi")
        return self

    @property
    def tokens_per_step(self) -> int:
        """Tokens per optimizer step on one process (multiply by world size under DDP)."""
        return self.seq_len * self.micro_batch_size * self.grad_accum

    @property
    def reference_budget(self) -> int:
        return self.reference_tokens if self.reference_tokens is not None else self.component_tokens
