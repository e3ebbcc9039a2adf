"""The run directory (one experiment, one directory) and its stage records."""

from __future__ import annotations

from demix.run.dir import RunDir

__all__ = ["RunDir"]
