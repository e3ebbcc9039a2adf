"""The merge stage: components loaded once into a stacked buffer, proxies Σ wᵢθᵢ merged in place into
a live HF model (torch on CPU, a Triton kernel on GPU), exported as HF checkpoints on demand.

Heavy libraries (torch, transformers, safetensors, triton, mergekit) are imported where used.
"""

from __future__ import annotations

from demix.merge.checkpoint import Checkpoint, open_checkpoint
from demix.merge.checks import (
    IGNORED_KEYS,
    check_compatible,
    check_dtypes,
    check_tokenizer,
    vocabulary_mismatches,
)
from demix.merge.engine import MergeEngine
from demix.merge.methods import NATIVE, check_weights, get_method, mergekit_available
from demix.merge.save import save_checkpoint
from demix.merge.stage import component_dirs, engine_for_run

__all__ = [
    "IGNORED_KEYS",
    "NATIVE",
    "Checkpoint",
    "MergeEngine",
    "check_compatible",
    "check_dtypes",
    "check_tokenizer",
    "check_weights",
    "component_dirs",
    "engine_for_run",
    "get_method",
    "mergekit_available",
    "open_checkpoint",
    "save_checkpoint",
    "vocabulary_mismatches",
]
