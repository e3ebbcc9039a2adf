"""Time one proxy end to end, the on-disk way vs demix's, side by side in one process.

On-disk (how DeMix's repo scores a proxy): mergekit writes the merged checkpoint (``run_merge``), then
lm-eval loads it from the path (``HFLM(pretrained=path)``), builds the tasks and evaluates
(``simple_evaluate``). demix: the fused merge into the live model, then ``lm_eval.evaluate`` on the
model lm-eval already wraps, with the task dictionary built once. Same tasks, same weights; the scores
must agree. The last line printed is one JSON object::

    {"ondisk_s": ..., "demix_s": ..., "speedup": ..., "max_abs_score_diff": ..., ...}

Run:  python scripts/bench_trial.py configs/demo.yaml [--weights prose=0.4,code=0.3,...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _settings(cfg: Any, suite: Any, role: str) -> tuple[Any, str, str, list[Any]]:
    """What both on-disk ways share: eval config, device, dtype name, and the role's task specs."""
    from demix.evaluate.harness import resolve_device, resolve_dtype

    ec = cfg.evaluate
    device = resolve_device(ec)
    return ec, device, str(resolve_dtype(ec, device)).removeprefix("torch."), suite.for_role(role)


def ondisk_trial(
    cfg: Any, run: Any, dirs: list[Path], w: list[float], suite: Any, role: str, out: Path
) -> tuple[float, dict[str, float]]:
    """mergekit writes the proxy, lm-eval loads it from disk and evaluates it; returns (seconds, scores)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    from demix.evaluate.harness import _quiet

    ec, device, dtype, specs = _settings(cfg, suite, role)
    t0 = time.perf_counter()
    merge_cfg = MergeConfiguration.model_validate(
        {
            "merge_method": "linear",
            "dtype": dtype,
            "models": [
                {"model": str(d.resolve()), "parameters": {"weight": float(x)}}
                for d, x in zip(dirs, w, strict=True)
            ],
        }
    )
    with _quiet(True):
        run_merge(
            merge_cfg, str(out), options=MergeOptions(cuda=device == "cuda", copy_tokenizer=False, quiet=True)
        )
        lm = HFLM(
            pretrained=str(out), tokenizer=str(run.tokenizer), device=device, dtype=dtype,
            batch_size=ec.batch_size, max_length=ec.max_length,
        )  # fmt: skip
        tm = TaskManager(include_path=[str(p) for p in suite.include_paths], include_defaults=False)
        res = lm_eval.simple_evaluate(
            model=lm, tasks=[s.name for s in specs], task_manager=tm, log_samples=False
        )
    seconds = time.perf_counter() - t0
    assert res is not None
    return seconds, _scores(res["results"], specs)


def ondisk_cli_trial(
    cfg: Any, run: Any, dirs: list[Path], w: list[float], suite: Any, role: str, out: Path
) -> tuple[float, dict[str, float]]:
    """The same, as DeMix's repo runs it: ``mergekit-yaml`` then ``lm_eval run``, one process each."""
    import subprocess

    import yaml

    ec, device, dtype, specs = _settings(cfg, suite, role)
    bindir = Path(sys.executable).parent
    out.mkdir(parents=True, exist_ok=True)
    merge_yaml = out / "merge.yaml"
    models = [
        {"model": str(d.resolve()), "parameters": {"weight": float(x)}} for d, x in zip(dirs, w, strict=True)
    ]
    merge_yaml.write_text(yaml.safe_dump({"merge_method": "linear", "dtype": dtype, "models": models}))
    model_args = f"pretrained={out / 'proxy'},tokenizer={run.tokenizer},dtype={dtype}"
    if ec.max_length:
        model_args += f",max_length={ec.max_length}"
    t0 = time.perf_counter()
    cmds = [
        [str(bindir / "mergekit-yaml"), str(merge_yaml), str(out / "proxy")]
        + (["--cuda"] if device == "cuda" else []),
        [str(bindir / "lm_eval"), "run", "--model", "hf", "--model_args", model_args, "--device", device,
         "--tasks", ",".join(s.name for s in specs), "--include_path", *[str(p) for p in suite.include_paths],
         "--batch_size", str(ec.batch_size), "--output_path", str(out / "results")],
    ]  # fmt: skip
    for cmd in cmds:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed:\n{r.stderr[-2000:]}")
    seconds = time.perf_counter() - t0
    result_file = max((out / "results").rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    return seconds, _scores(json.loads(result_file.read_text())["results"], specs)


def _scores(results: dict[str, Any], specs: list[Any]) -> dict[str, float]:
    out = {}
    for s in specs:
        key = next(k for k in results[s.name] if k.split(",")[0] == s.metric)
        out[s.name] = float(results[s.name][key])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path, help="experiment YAML or run directory (with trained components)")
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE (repeatable)")
    ap.add_argument("--weights", default=None, help="name=w,... (default: uniform)")
    ap.add_argument("--role", default="search", choices=("search", "report", "all"))
    ap.add_argument("--repeats", type=int, default=3, help="proxies timed per side (median reported)")
    ap.add_argument("--cli", action="store_true", help="also time the per-process CLI way once (slow)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from demix.cli.common import load
    from demix.errors import DemixError
    from demix.evaluate import Evaluator, build_tasks
    from demix.evaluate.command import run_tokenizer
    from demix.merge import component_dirs, engine_for_run
    from demix.mixture import format_weights, parse_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg, run = load(args.config, args.set, args.run_dir)
        names, dirs = component_dirs(cfg, run)
        w = (
            parse_weights(args.weights, names, normalize=True)
            if args.weights
            else np.full(len(names), 1 / len(names))
        )
        t0 = time.perf_counter()
        suite = build_tasks(cfg, run)
        engine = engine_for_run(cfg, run)
        ev = Evaluator(cfg, run, engine.model, run_tokenizer(cfg, run), suite)
        setup_s = time.perf_counter() - t0
    except DemixError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    specs = suite.for_role(args.role)

    demix_times, ondisk_times, diffs = [], [], []
    merge_times = []
    with tempfile.TemporaryDirectory(prefix="bench-trial-") as tmp:
        for i in range(args.repeats):
            t = time.perf_counter()
            engine.merge(w, method="linear", normalize=True)
            merge_times.append(time.perf_counter() - t)
            res = ev.evaluate(args.role)
            demix_times.append(time.perf_counter() - t)
            live = {s.name: (res.metrics.get(s.name) or res.losses[s.name]).value for s in specs}
            secs, disk = ondisk_trial(cfg, run, dirs, list(w), suite, args.role, Path(tmp) / f"proxy{i}")
            ondisk_times.append(secs)
            diffs.append(max(abs(live[k] - disk[k]) for k in live))
            print(
                f"proxy {i}: demix {demix_times[-1]:.3f} s, on-disk {secs:.3f} s, max |score diff| {diffs[-1]:.2e}"
            )
        cli = None
        if args.cli:
            secs, disk = ondisk_cli_trial(cfg, run, dirs, list(w), suite, args.role, Path(tmp) / "cli")
            cli = (secs, max(abs(live[k] - disk[k]) for k in live))
            print(
                f"on-disk via mergekit-yaml + lm_eval processes: {secs:.3f} s, max |score diff| {cli[1]:.2e}"
            )
    ondisk, dmx = statistics.median(ondisk_times), statistics.median(demix_times)
    report = {
        "ondisk_s": round(ondisk, 4),
        "demix_s": round(dmx, 4),
        "speedup": round(ondisk / dmx, 2),
        "max_abs_score_diff": max(diffs),
        "demix_merge_s": round(statistics.median(merge_times), 5),
        "demix_setup_s": round(setup_s, 3),
        "tasks": len(specs),
        "role": args.role,
        "weights": format_weights(w, names),
        "params": sum(p.numel() for p in engine.model.parameters()),
        "device": str(engine.device),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
    }
    if cli is not None:
        report.update(
            ondisk_cli_s=round(cli[0], 3), speedup_cli=round(cli[0] / dmx, 2), max_abs_score_diff_cli=cli[1]
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
