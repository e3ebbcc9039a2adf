"""One component per GPU: ``demix train components --parallel`` on a multi-GPU machine.

Components are independent, so with G GPUs the fastest schedule is G single-GPU trainings at once (no
gradient communication at all). Each worker is a ``demix train components --domain ...`` subprocess
that sees one GPU through ``CUDA_VISIBLE_DEVICES``; its output goes to a log file beside the components.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from demix.config import ExperimentConfig, dump_config
from demix.errors import DemixError
from demix.run import RunDir

_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def assign(domains: Sequence[str], n_gpus: int) -> list[list[str]]:
    """Round-robin the components over GPUs (equal budgets, so equal work per component)."""
    return [list(domains[i::n_gpus]) for i in range(min(n_gpus, len(domains)))]


def train_components_parallel(
    cfg: ExperimentConfig, run: RunDir, domains: Sequence[str], *, fresh: bool = False
) -> None:
    """Train ``domains`` with one subprocess per visible GPU and wait for all of them.

    Raises:
        DemixError: a worker failed (naming its log file).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in visible.split(",")] if visible else [str(i) for i in range(gpu_count())]
    logs_dir = run.models / "components"
    logs_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, dir=logs_dir, prefix=".config.") as f:
        f.write(dump_config(cfg))
        cfg_path = Path(f.name)
    procs = []
    try:
        for gpu, chunk in zip(ids, assign(domains, len(ids)), strict=False):
            env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
            env["CUDA_VISIBLE_DEVICES"] = gpu
            cmd = [
                sys.executable,
                "-m",
                "demix",
                "train",
                "components",
                str(cfg_path),
                "--run-dir",
                str(run.root),
                "--set",
                "train.progress=false",
                *[a for d in chunk for a in ("--domain", d)],
            ]
            if fresh:
                cmd.append("--fresh")
            log = logs_dir / f"parallel-gpu{gpu}.log"
            with open(log, "w") as fh:
                procs.append(
                    (subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT), log, chunk)
                )
        failed = [(log, chunk) for p, log, chunk in procs if p.wait() != 0]
    finally:
        for p, _, _ in procs:
            if p.poll() is None:
                p.terminate()
        cfg_path.unlink(missing_ok=True)
    if failed:
        what = "; ".join(f"{', '.join(chunk)} (see {log})" for log, chunk in failed)
        raise DemixError(f"component training failed on a GPU: {what}")
