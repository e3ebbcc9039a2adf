"""The merge engine of a run: its components in the manifest's order (or the user's own)."""

from __future__ import annotations

from pathlib import Path

from demix.config import ExperimentConfig
from demix.errors import DemixError, StageError
from demix.merge.engine import MergeEngine
from demix.merge.methods import get_method
from demix.run import RunDir


def component_dirs(cfg: ExperimentConfig, run: RunDir) -> tuple[list[str], list[Path]]:
    """Domain names in canonical order and the component checkpoint of each.

    The manifest's order is canonical; without prepared data (components brought from elsewhere) the
    config's order is used.

    Raises:
        StageError: a component has not been trained yet.
        DemixError: ``merge.components`` does not cover the manifest's domains.
    """
    if run.manifest.is_file():
        from demix.data.manifest import Manifest

        names = Manifest.load(run).names
    else:
        names = cfg.domains
    given = cfg.merge.components
    if given is not None:
        missing = [d for d in names if d not in given]
        if missing:
            raise DemixError(f"merge.components: no checkpoint for domain {missing[0]!r}")
        dirs = [Path(given[d]) for d in names]
    else:
        dirs = [run.component(d) for d in names]
        for d, p in zip(names, dirs, strict=True):
            if not (p / "config.json").is_file():
                raise StageError(f"no trained component for {d!r} at {p}; run `demix train` first")
    return names, dirs


def engine_for_run(cfg: ExperimentConfig, run: RunDir) -> MergeEngine:
    """Build the run's merge engine from ``cfg.merge`` (device, dtype, backend, method's base).

    The base model is loaded only when the configured method needs it (task arithmetic, TIES, ...):
    ``merge.base`` when given, else the run's base model.
    """
    names, dirs = component_dirs(cfg, run)
    m = cfg.merge
    base = None
    if get_method(m.method).needs_base:
        base = Path(m.base) if m.base is not None else run.base
        if not (base / "config.json").is_file():
            raise StageError(f"merge.method={m.method} needs the base model, not found at {base}")
    return MergeEngine.from_checkpoints(
        dirs,
        device=m.device,
        dtype=m.dtype,
        backend=m.backend,
        base=base,
        names=names,
        stream=None if m.host_memory_fallback else False,
        compile=m.compile,
    )
