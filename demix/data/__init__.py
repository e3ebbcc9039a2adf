"""Prepared data: tokenizer, packed token shards, the manifest, and the mixture sampler."""

from __future__ import annotations

from demix.data.manifest import DomainInfo, Manifest
from demix.data.sampler import MixtureSampler

__all__ = ["DomainInfo", "Manifest", "MixtureSampler"]
