"""The report: report/report.html (self-contained) and report/report.md, from the run's products.

Public API::

    report(cfg, run) -> Path

Modules: ``build`` (sections and renderers), ``law`` (the law's sections), ``plots``
(matplotlib figures, imported where used).
"""

from __future__ import annotations

from demix.report.build import report

__all__ = ["report"]
