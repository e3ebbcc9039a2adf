"""Config sections for the recommendation/export and for validation against trained references."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from demix.config.base import Count, StrictModel

ExportFormat = Literal["json", "yaml", "csv", "megatron", "hf", "markdown"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("json", "yaml", "csv", "megatron", "hf", "markdown")


class ExportConfig(StrictModel):
    """What goes to the data team: data ratios r, tokens per source and epochs, in several formats."""

    choose: Literal["surrogate_topk", "best_trial", "law"] = "surrogate_topk"
    target_tokens: Count = 100_000_000_000  # size of the production run the mixture is for
    max_epochs: float = Field(default=4.0, gt=0)  # warn above this many passes over a source
    strict_epochs: bool = False  # above max_epochs: fail (exit 2, nothing written) instead of warning
    formats: list[ExportFormat] = Field(default_factory=lambda: list(EXPORT_FORMATS))
    bootstrap: int = Field(
        default=100, ge=0
    )  # bootstrap resamples over trials (surrogate refits) for share intervals
    edge_tolerance: float = Field(default=0.02, ge=0)  # how close to the beta edge counts as "pushing"
    megatron_prefix: str = "{domain}_text_document"  # data path prefix per source in the Megatron blend


class ValidateConfig(StrictModel):
    """Train real reference models on sampled mixtures and measure how well proxies rank them."""

    mixtures: int = Field(default=16, gt=1)
    seed: int = 1234
    reference_tokens: Count | None = None  # default: train.reference_tokens / component_tokens
    concentration: float = Field(default=1.0, gt=0)  # Dirichlet concentration of the sampled weights
    bootstrap: int = Field(default=1000, ge=0)
    top_fraction: float = Field(default=0.25, gt=0, le=1)
