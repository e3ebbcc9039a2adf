"""The report: report/report.html (self-contained) and report/report.md, from the run's products.

Public API::

    report(cfg, run) -> Path
    summarize(cfg, run) -> RunSummary      # the run's products, read once

Modules: ``summary`` (what the report reads, read once), ``section`` (the :class:`Section` type),
``build`` (the sections and ``report``), ``law`` (the law's section), ``render`` (HTML and
markdown), ``plots`` (matplotlib figures, imported where used).
"""

from __future__ import annotations

from demix.report.build import report
from demix.report.summary import RunSummary, summarize

__all__ = ["RunSummary", "report", "summarize"]
