"""Every mixing method on the same candidates, each answer checked by training (issue 17).

Public API::

    compare(cfg, run) -> dict        # compare/compare.json

Modules: ``models`` (train from the base and score, cached; :class:`Cost`), ``methods`` (prior,
uniform, hand mixtures, demix, doremi), ``swarm`` (the swarm; regmix and law), ``check`` (the
scale, intervals, ranks, order agreement; pure), ``stage`` (the stage).
"""

from __future__ import annotations

from demix.compare.models import Cost
from demix.compare.stage import SCHEMA, compare

__all__ = ["SCHEMA", "Cost", "compare"]
