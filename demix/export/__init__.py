"""Export: the files a data team gets, from the recommendation (:mod:`demix.recommend`).

Public API::

    export(cfg, run, target_tokens=None) -> list[Path]   # export/recommended_mixture.{json,yaml,csv}, ...

Modules: ``plan`` (tokens and epochs per source), ``formats`` (every file format), ``stage``
(the document schema and the stage function ``export``).
"""

from __future__ import annotations

from demix.export.plan import SCHEMA, TokenPlan, round_shares, split_tokens, token_plan
from demix.export.stage import export

__all__ = ["SCHEMA", "TokenPlan", "export", "round_shares", "split_tokens", "token_plan"]
