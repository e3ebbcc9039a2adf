"""The data-mixing law as the recommendation sees it: its optimum, its loss prediction, bootstrap.

Reads what ``demix law check`` wrote (``law/check.json``: the optimum under the search's
constraints; ``law/fit.json``: the law fitted on every trial) and, for the interval, refits the law
on resampled trials (bootstrap counts as fit weights) with a smaller multi-start grid. Loaded only
when the law stage ran; otherwise the recommendation has two candidates, not three.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from demix.config import ExperimentConfig
from demix.config.law import LawConfig
from demix.errors import DemixError
from demix.mixture import from_mapping, ratios_to_weights
from demix.recommend.choices import Candidate, bootstrap_interval
from demix.run import RunDir
from demix.util.io import read_json

if TYPE_CHECKING:
    from demix.law import LawTable, MixingLaw

LAW_BOOTSTRAP = 20  # law refits per interval at most (each is a multi-start fit)


@dataclass
class LawView:
    """The law stage's optimum and fit, and the trials it was fitted on.

    Attributes:
        r_opt: (K,) the law optimum's data ratios (``law/check.json``).
        law: the law fitted on every trial (``law/fit.json``), with its aggregation weights.
        table: the trials as the law reads them (``search/trials.csv``).
        token_counts: (K,) training tokens per domain for the epoch cap, when known.
    """

    cfg: ExperimentConfig
    r_opt: np.ndarray
    law: MixingLaw
    table: LawTable
    token_counts: np.ndarray | None

    def loss(self, r: np.ndarray) -> float:
        """The law's predicted overall loss (bits per byte) at data ratios r."""
        return float(self.law.predict_aggregate(np.atleast_2d(r))[0])

    def refit_optimum(self, idx: np.ndarray, b: int) -> np.ndarray | None:
        """The optimum of the law refitted on the trials ``idx`` (a bootstrap resample)."""
        from demix.law import fit, optimize_for

        counts = np.bincount(idx, minlength=len(self.table.R)).astype(np.float64)
        if np.count_nonzero(counts) < len(self.table.domains) + 1:
            return None
        t = self.table
        try:
            # Each form of the fitted law refitted alone, combined with the fitted law's weights
            # (a combined law's parts; a single form is its own only part).
            forms = tuple(
                (w, fit(t.R, t.L, cheap(self.cfg.law, b, part.exponent), domains=t.domains,
                        targets=t.targets, aggregate=self.law.aggregate, weights=counts))
                for w, part in self.law.forms
            )  # fmt: skip
            law = forms[0][1] if len(forms) == 1 else replace(self.law, parts=forms)
            return optimize_for(self.cfg, law, t.domains, token_counts=self.token_counts)
        except DemixError:  # a resample the law cannot be fitted on (too few points per domain)
            return None

    def candidate(self, general: str, beta: float, replicates: int, seed: int) -> Candidate:
        """The law optimum as a candidate, with an interval from refits on resampled trials."""
        domains = self.law.domains
        try:
            w = ratios_to_weights(self.r_opt, domains, general, beta)
        except DemixError:
            w = None  # less general data than beta: no proxy represents it
        n = len(self.table.R)
        interval = bootstrap_interval(self.refit_optimum, n, min(replicates, LAW_BOOTSTRAP), seed)
        note = f"optimum of the data-mixing law fitted to {n} trials' per-domain losses"
        if w is None:
            note += f" (less {general} data than beta={beta:g}: no proxy represents it)"
        return Candidate("law", self.r_opt, w, {"law_loss": self.loss(self.r_opt)}, interval, note)


def cheap(cfg: LawConfig, b: int, exponent: float) -> LawConfig:
    """Law settings with a small multi-start grid (2 x 3 x 2 starts), seeded per replicate.

    One form (``exponent``, one of the fitted law's): a bootstrap resample repeats rows, which
    would leak between the folds of a cross-validation that chose the forms or their weights again.
    """
    return cfg.model_copy(
        update={
            "exponents": (exponent,),
            "log_c_grid": (cfg.log_c_grid[0], cfg.log_c_grid[1], 2),
            "log_k_grid": (cfg.log_k_grid[0], cfg.log_k_grid[1], 3),
            "random_t": 2,
            "seed": cfg.seed + 1 + b,
        }
    )


def load_law(cfg: ExperimentConfig, run: RunDir, token_counts: np.ndarray | None) -> LawView | None:
    """The law view of a run, or ``None`` when the law stage has not run (no ``law/check.json``)."""
    check_p = run.law / "check.json"
    if not check_p.is_file():
        return None
    from demix.law import load_fit, read_table

    check = read_json(check_p)
    law = load_fit(run)
    opt = (check.get("law_optimum") or {}).get("r")
    if not isinstance(opt, dict):
        raise DemixError("no law_optimum.r; rerun `demix law check`", path=check_p)
    return LawView(cfg, from_mapping(opt, law.domains), law, read_table(run.trials_csv), token_counts)
