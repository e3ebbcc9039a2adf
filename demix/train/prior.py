"""The token prior and the reference model trained on it: what a DoReMi proxy runs against when the
user names no reference.

DoReMi (Xie et al. 2023) trains its reference on the default mixture, the domains' token counts.
Such a reference is often in the run already: ``demix compare`` trains the prior's check model
(also its DoReMi reference) under ``models/references/``, and ``demix train reference --mixture``
trains one by hand. When exactly one finished reference there was trained on the prior, it is the
obvious reference; with none or several, the user must say which.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from demix.config import ExperimentConfig
from demix.data import Manifest
from demix.data.manifest import token_counts
from demix.errors import DemixError
from demix.run import RunDir
from demix.train.jobs import read_summary


def prior_counts(cfg: ExperimentConfig, run: RunDir, manifest: Manifest) -> np.ndarray:
    """Training tokens per domain in manifest order: ``search.token_counts`` when the config states
    them for every domain, as every stage counts them (:func:`demix.data.manifest.token_counts`);
    else the prepared data's."""
    counts = token_counts(cfg, run, manifest.names, manifest=manifest)
    return np.asarray(counts if counts is not None else manifest.token_counts(), dtype=np.float64)


def token_prior(cfg: ExperimentConfig, run: RunDir, manifest: Manifest) -> np.ndarray:
    """:func:`prior_counts`, normalised: the token-count prior."""
    c = prior_counts(cfg, run, manifest)
    return c / float(np.sum(c))


def prior_references(cfg: ExperimentConfig, run: RunDir, manifest: Manifest) -> list[Path]:
    """The finished reference models under ``models/references/`` whose recorded mixture is the
    token prior (to 1e-6 per domain; a summary rounds nothing, but the prior is a quotient)."""
    prior = token_prior(cfg, run, manifest)
    root = run.models / "references"
    out = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        s = read_summary(d) or {}
        mix = s.get("mixture")
        if (
            s.get("kind") != "reference"
            or not isinstance(mix, dict)
            or not (d / "model.safetensors").is_file()
        ):
            continue
        r = np.array([float(mix.get(n, 0.0)) for n in manifest.names])
        if r.sum() > 0 and np.allclose(r / r.sum(), prior, rtol=0, atol=1e-6):
            out.append(d)
    return out


def default_reference(cfg: ExperimentConfig, run: RunDir, manifest: Manifest) -> Path:
    """The one reference trained on the token prior (:func:`prior_references`).

    Raises:
        DemixError: none or several, naming what to give instead.
    """
    found = prior_references(cfg, run, manifest)
    if len(found) == 1:
        return found[0]
    where = run.models / "references"
    if found:
        raise DemixError(
            f"--reference: {len(found)} references under {where} were trained on the token prior "
            f"({', '.join(p.name for p in found)}); say which with --reference DIR"
        )
    prior = ",".join(
        f"{n}={v:.12g}" for n, v in zip(manifest.names, token_prior(cfg, run, manifest), strict=True)
    )
    raise DemixError(
        f"--reference: no reference model given (train.doremi.reference is not set) and none under {where} "
        f"was trained on the token prior; give --reference DIR, or train one first with "
        f"`demix train reference RUN --mixture {prior}`"
    )
