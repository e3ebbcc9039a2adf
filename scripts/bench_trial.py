"""Time one proxy end to end four ways, side by side in one run, and check they score the same.

Per proxy (the same mixture weights, the same tasks of ``--role``, interleaved in every repeat):

* ``demix_s``: demix's way. The fused merge writes the mixture into the live model
  (``MergeEngine.merge``), then ``Evaluator.evaluate`` runs lm-eval's ``evaluate`` on the model lm-eval
  already wraps (``LiveHFLM``: prefix sharing, LM head on scored positions only), with the task
  dictionary built once and tokenisation memoised. Building the engine, the wrapper and the tasks is
  paid once per worker (``demix_setup_s``, not in ``demix_s``).
* ``ondisk_s`` (``ondisk_cli_s``): the on-disk way **as DeMix's repo runs it**, and the issue's
  baseline: ``mergekit-yaml`` writes the proxy checkpoint, then the ``lm_eval run --model hf`` CLI
  loads it from the path and evaluates the same tasks (``--include_path`` the run's task YAML), one
  process each, per proxy. Everything a cold process pays (imports, loading, task building) counts.
* ``ondisk_inprocess_s``: the most favourable on-disk baseline. In this warm process (imports done),
  mergekit's ``run_merge`` writes the proxy, stock lm-eval loads it (``HFLM(pretrained=path)``),
  builds the tasks (``TaskManager(include_path=...)``) and runs ``simple_evaluate``.
* ``demix_stock_lm_s``: demix's call again (merge + ``Evaluator.evaluate``) with ``LiveHFLM.fast =
  False``, i.e. stock ``HFLM``'s computation on the live model: demix before its fast
  log-likelihood path, to show what that path is worth.

``speedup`` = ``ondisk_s / demix_s`` (the CLI way); ``speedup_inprocess`` = ``ondisk_inprocess_s /
demix_s``; medians over ``--repeats``. ``--no-cli`` skips the CLI way (slow: about a minute per proxy on
a loaded CPU); ``ondisk_s`` and ``speedup`` are then the in-process ones and ``baseline`` says so.
``max_abs_score_diff`` is the largest |demix - on-disk| over every numeric lm-eval metric of every task
run (``acc``, ``acc_norm``, ``bits_per_byte``, ...: search tasks and the bits-per-byte losses), against
every on-disk way measured, in every repeat; a metric one side lacks makes it ``inf``
(``score_diff_by_way`` gives it per way, ``stock_lm`` included). The last line printed is one JSON
object::

    {"ondisk_s": ..., "demix_s": ..., "speedup": ..., "max_abs_score_diff": ..., "speedup_inprocess": ...}

Run:  python scripts/bench_trial.py RUN_DIR_OR_CONFIG [--weights prose=0.4,code=0.3,...] [--repeats 3]
      [--threads 1] [--no-cli] [--set evaluate.builtin.bpb_docs=4 ...]
"""

from __future__ import annotations

import argparse
import json
import math
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
    from demix.util.torchenv import resolve_device, resolve_dtype

    ec = cfg.evaluate
    device = resolve_device(ec.device, key="evaluate.device")
    dtype = resolve_dtype(ec.dtype, device, key="evaluate.dtype")
    return ec, str(device), str(dtype).removeprefix("torch."), suite.for_role(role)


def ondisk_trial(
    cfg: Any, run: Any, dirs: list[Path], w: list[float], suite: Any, role: str, out: Path
) -> tuple[float, dict[tuple[str, str], float]]:
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
) -> tuple[float, dict[tuple[str, str], float]]:
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
         "--tasks", ",".join(s.name for s in specs),
         *(["--include_path", *map(str, suite.include_paths)] if suite.include_paths else []),
         "--batch_size", str(ec.batch_size), "--output_path", str(out / "results")],
    ]  # fmt: skip
    for cmd in cmds:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed:\n{r.stderr[-2000:]}")
    seconds = time.perf_counter() - t0
    result_file = max((out / "results").rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    return seconds, _scores(json.loads(result_file.read_text())["results"], specs)


def _scores(results: dict[str, Any], specs: list[Any]) -> dict[tuple[str, str], float]:
    """(task, lm-eval metric key) -> value, for every numeric metric (not stderr) of every task."""
    out = {}
    for s in specs:
        for key, value in results.get(s.name, {}).items():
            if "," in key and "_stderr," not in key and isinstance(value, int | float):
                out[(s.name, key)] = float(value)
    return out


def _values(detail: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: m["value"] for k, m in detail.items()}


def detail_scores(res: Any) -> dict[tuple[str, str], float]:
    """(task, lm-eval metric key) -> value, for every metric of a demix ``EvalResult``."""
    return {
        (t, k): float(m["value"])
        for t, d in res.details.items()
        for k, m in d.items()
        if m["value"] is not None
    }


def max_score_diff(live: dict[tuple[str, str], float], disk: dict[tuple[str, str], float]) -> float:
    """Largest |live - disk| over every metric; ``inf`` when one side has a metric the other lacks."""
    if live.keys() != disk.keys() or not live:
        missing = sorted(set(live) ^ set(disk))
        print(f"metrics on one side only: {missing[:6]}", file=sys.stderr)
        return math.inf
    return max(abs(v - disk[k]) for k, v in live.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path, help="experiment YAML or run directory (with trained components)")
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE (repeatable)")
    ap.add_argument("--weights", default=None, help="name=w,... (default: uniform)")
    ap.add_argument("--role", default="search", choices=("search", "report", "all"))
    ap.add_argument("--repeats", type=int, default=3, help="proxies timed per way (medians reported)")
    ap.add_argument(
        "--no-cli", dest="cli", action="store_false", help="skip the mergekit-yaml + lm_eval CLI way"
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads, every way (default: torch's)"
    )
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
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the CLI processes too
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

    times: dict[str, list[float]] = {"demix": [], "merge": [], "stock_lm": [], "inprocess": [], "cli": []}
    diffs: dict[str, list[float]] = {"stock_lm": [], "inprocess": [], "cli": []}
    with tempfile.TemporaryDirectory(prefix="bench-trial-") as tmp:
        for i in range(args.repeats):
            t = time.perf_counter()
            engine.merge(w, method="linear", normalize=True)
            times["merge"].append(time.perf_counter() - t)
            res = ev.evaluate(args.role)
            times["demix"].append(time.perf_counter() - t)
            live = detail_scores(res)
            line = f"proxy {i}: demix {times['demix'][-1]:.3f} s"
            ev.lm.fast = False  # the same call with stock HFLM's computation: demix before LiveHFLM
            t = time.perf_counter()
            engine.merge(w, method="linear", normalize=True)
            stock = ev.evaluate(args.role)
            times["stock_lm"].append(time.perf_counter() - t)
            ev.lm.fast = True
            diffs["stock_lm"].append(
                max_score_diff(live, _scores({k: _values(d) for k, d in stock.details.items()}, specs))
            )
            line += f", demix with stock HFLM {times['stock_lm'][-1]:.3f} s"
            ways = [("inprocess", ondisk_trial)] + ([("cli", ondisk_cli_trial)] if args.cli else [])
            for way, trial in ways:
                secs, disk = trial(cfg, run, dirs, list(w), suite, args.role, Path(tmp) / f"{way}{i}")
                times[way].append(secs)
                diffs[way].append(max_score_diff(live, disk))
                line += f", on-disk {way} {secs:.3f} s (max |score diff| {diffs[way][-1]:.2e})"
            print(line, flush=True)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    dmx = med["demix"]
    baseline = "cli" if args.cli else "inprocess"
    report: dict[str, Any] = {
        "ondisk_s": round(med[baseline], 3),
        "demix_s": round(dmx, 4),
        "speedup": round(med[baseline] / dmx, 2),
        "max_abs_score_diff": max(x for way in ("inprocess", "cli") for x in diffs[way]),
        "baseline": baseline,
        "ondisk_cli_s": round(med["cli"], 3) if args.cli else None,
        "ondisk_inprocess_s": round(med["inprocess"], 3),
        "speedup_inprocess": round(med["inprocess"] / dmx, 2),
        "demix_stock_lm_s": round(med["stock_lm"], 3),
        "score_diff_by_way": {k: max(v) for k, v in diffs.items() if v},
        "demix_merge_s": round(med["merge"], 5),
        "demix_setup_s": round(setup_s, 3),
        "demix_times_s": [round(x, 3) for x in times["demix"]],
        "ondisk_times_s": {k: [round(x, 3) for x in times[k]] for k in ("inprocess", "cli") if times[k]},
        "demix_stock_lm_times_s": [round(x, 3) for x in times["stock_lm"]],
        "metrics_compared": len(live),
        "tasks": len(specs),
        "role": args.role,
        "weights": format_weights(w, names),
        "params": sum(p.numel() for p in engine.model.parameters()),
        "device": str(engine.device),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
