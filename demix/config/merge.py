"""Config section for the merge engine."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from demix.config.base import StrictModel


class MergeConfig(StrictModel):
    """How proxies are formed from components.

    ``components`` lets a user bring their own compatible HF checkpoints (e.g. DeMix's released
    components) instead of the ones demix trained; their order must match the candidates.
    """

    method: str = "linear"  # linear | task_arithmetic | any mergekit method (ties, dare_ties, della, ...)
    method_params: dict[str, float] = Field(default_factory=dict)  # extra mergekit parameters (density, ...)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "torch", "triton"] = "auto"  # auto: triton on CUDA, torch on CPU
    normalize: bool = True  # renormalise weights to sum 1 (off only for task arithmetic)
    components: dict[str, Path] | None = None  # domain -> checkpoint dir (bring your own)
    base: Path | None = None  # base checkpoint for task_arithmetic (default: the run's base model)
    host_memory_fallback: bool = True  # stream blocks from pinned host memory when K*P does not fit
    compile: bool | None = None  # torch path: fuse the sum with torch.compile (None: models >= 4M params)

    @model_validator(mode="after")
    def _ta(self) -> MergeConfig:
        if not self.normalize and self.method == "linear":
            raise ValueError("merge.normalize=false only makes sense with method=task_arithmetic")
        return self
