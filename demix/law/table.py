"""The law's measurements as arrays: one row per run (or checkpoint), ratios and losses (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from demix.errors import DemixError


@dataclass
class LawTable:
    """Measurements for the law.

    Attributes:
        domains: K training domains (``mix:`` columns, file order).
        targets: V validation domains (``loss:`` columns).
        R: (n, K) data ratios, rows renormalised to sum exactly 1.
        L: (n, V) losses, NaN where not measured.
        step, size: (n,) or ``None`` when the column is absent.
        rows: (n,) the CSV data-row number of each row (1 = first row after the header).
        source: where it was read from.
        rescaled: (n,) True where the written shares missed 1 (within their precision) and were
            rescaled; ``None`` when not read from a table.
    """

    domains: list[str]
    targets: list[str]
    R: np.ndarray
    L: np.ndarray
    step: np.ndarray | None
    size: np.ndarray | None
    rows: np.ndarray
    source: str
    rescaled: np.ndarray | None = None

    @property
    def n_rescaled(self) -> int:
        """Rows whose written shares were rescaled to sum to 1."""
        return 0 if self.rescaled is None else int(np.count_nonzero(self.rescaled))

    def subset(self, idx: np.ndarray) -> LawTable:

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return LawTable(
            self.domains, self.targets, self.R[idx], self.L[idx], pick(self.step), pick(self.size),
            self.rows[idx], self.source, pick(self.rescaled),
        )  # fmt: skip

    def select(self, names: Sequence[str] | None) -> LawTable:
        """Only the ``loss:`` columns named, in that order (``--targets``); all when ``names`` is None.

        Raises:
            DemixError: a name that is not a target of the table (the message lists the targets).
        """
        if names is None:
            return self
        unknown = [t for t in names if t not in self.targets]
        if unknown:
            raise DemixError(
                f"--targets: {unknown[0]!r} is not a target of {self.source} (its loss: columns: "
                f"{', '.join(self.targets)})"
            )
        if not names:
            raise DemixError("--targets: give at least one target")
        return replace(self, targets=list(names), L=self.L[:, [self.targets.index(t) for t in names]])
