"""Prepared data: tokenizer, packed token shards, the manifest, and the mixture sampler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from demix.data.manifest import DomainInfo, Manifest
from demix.data.prepare import prepare
from demix.data.tokenizer import load_tokenizer

if TYPE_CHECKING:
    from demix.data.batches import MixtureSampler

__all__ = ["DomainInfo", "Manifest", "MixtureSampler", "load_tokenizer", "prepare"]


def __getattr__(name: str) -> Any:
    # The sampler needs torch; import it only when asked for, so `demix prepare` starts fast.
    if name == "MixtureSampler":
        from demix.data.batches import MixtureSampler

        return MixtureSampler
    raise AttributeError(f"module 'demix.data' has no attribute {name!r}")
