"""The GPU check's pipeline parts: `demix run` on CUDA, LiveHFLM vs stock HFLM on its proxy, two workers."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from gpu_check_common import CONFIG, Ctx, PartError, demix_cli, figure, merge_weights


def load_run(ctx: Ctx, run_dir: Path) -> tuple[Any, Any]:
    """The config and run directory of the `run` part's pipeline."""
    from demix.config import load_config
    from demix.run import RunDir

    if not (run_dir / "models" / "components").is_dir():
        raise PartError(f"no trained components in {run_dir}: the `run` part did not get that far")
    cfg = load_config(CONFIG, [*ctx.sets, f"run_dir={run_dir}"])
    return cfg, RunDir.for_config(cfg)


def part_run(ctx: Ctx) -> dict[str, Any]:
    """`demix run configs/gpu-check.yaml`: every stage, and every model trained on the device."""
    from demix.pipeline import status

    run_dir = ctx.work / "run"
    t0 = time.perf_counter()
    proc = demix_cli(ctx, "run", str(CONFIG), "--run-dir", str(run_dir))
    wall = time.perf_counter() - t0
    stages = {m[1]: float(m[2]) for m in re.finditer(r"== (\S+): finished in ([\d.]+) s", proc.stderr)}
    cfg, run = load_run(ctx, run_dir)
    states = {st.name: st.state for st in status(cfg, run) if not st.optional}
    summaries = [json.loads(p.read_text()) for p in sorted(run.root.glob("models/**/train_summary.json"))]
    devices = sorted({s["device"] for s in summaries})
    with run.trials_csv.open() as f:
        trials = list(csv.DictReader(f))
    figures = {
        "stages_done": figure(sum(v == "done" for v in states.values()), len(states), kind="check"),
        "models_trained_on_device": figure(
            sum(s["device"].startswith(ctx.device) for s in summaries), 1 + len(cfg.domains), kind="check"
        ),
        "wall_s": figure(wall),
        "base_train_mfu": figure(next((s["mfu"] for s in summaries if s["kind"] == "base"), None)),
        "trial_merge_s": figure(statistics.median(float(t["merge_s"]) for t in trials)),
        "trial_eval_s": figure(statistics.median(float(t["eval_s"]) for t in trials)),
    }
    return {"figures": figures, "info": {"stage_s": stages, "states": states, "train_devices": devices,
                                         "trials": len(trials), "run_dir": str(run_dir)}}  # fmt: skip


class FlopCounter:
    """Counts what the model computes: decoder tokens (padding included) and LM-head rows."""

    def __init__(self, model: Any) -> None:
        from demix.train import model_shape

        shape = model_shape(model)
        head = model.get_output_embeddings()
        self.head_flops = 2 * head.weight.numel()  # per row: hidden x vocab multiply-adds
        self.decoder_flops = 2 * shape.non_embedding  # per token (attention's T-dependent part left out)
        self.tokens = self.rows = 0
        model.get_decoder().register_forward_pre_hook(self._decoder, with_kwargs=True)
        head.register_forward_pre_hook(self._head)

    def _decoder(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            self.tokens += ids.numel()

    def _head(self, module: Any, args: tuple) -> None:
        self.rows += args[0].numel() // args[0].shape[-1]

    def reset(self) -> None:
        self.tokens = self.rows = 0

    @property
    def flops(self) -> float:
        return self.tokens * self.decoder_flops + self.rows * self.head_flops


def timed_eval(ev: Any, counter: FlopCounter) -> tuple[Any, float, int, float]:
    """One warm-up call, then one timed call: (result, seconds, decoder tokens, FLOPs)."""
    ev.evaluate("all")
    counter.reset()
    t0 = time.perf_counter()
    res = ev.evaluate("all")
    seconds = time.perf_counter() - t0
    return res, seconds, counter.tokens, counter.flops


def part_live_vs_stock(ctx: Ctx) -> dict[str, Any]:
    """LiveHFLM vs stock lm-eval HFLM(softmax_dtype="float32") on one proxy: scores, tokens/s, MFU."""
    import torch
    from bench_trial import detail_scores, max_score_diff
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from demix.evaluate import Evaluator, build_tasks
    from demix.merge import engine_for_run
    from demix.train.hardware import matmul_rate

    cfg, run = load_run(ctx, ctx.work / "run")
    engine = engine_for_run(cfg, run)
    tok = AutoTokenizer.from_pretrained(str(run.tokenizer))
    ev = Evaluator(cfg, run, engine.model, tok, build_tasks(cfg, run))
    engine.merge(merge_weights(engine.k))
    counter = FlopCounter(engine.model)
    live, live_s, live_tokens, live_flops = timed_eval(ev, counter)
    ev.lm = HFLM(pretrained=engine.model, tokenizer=tok, batch_size=cfg.evaluate.batch_size,
                 max_length=cfg.evaluate.max_length, softmax_dtype="float32")  # fmt: skip
    stock, stock_s, stock_tokens, stock_flops = timed_eval(ev, counter)
    diff = max_score_diff(detail_scores(live), detail_scores(stock))
    within = ctx.targets["live_vs_stock_max_abs_diff"]
    peak = matmul_rate(engine.device, engine.dtype if engine.dtype != torch.float32 else None)
    return {
        "figures": {
            "max_abs_score_diff": figure(diff, within, at_most=True, kind="check"),
            "speedup": figure(stock_s / live_s),
            "live_s": figure(live_s),
            "stock_s": figure(stock_s),
            "live_tokens_per_s": figure(live_tokens / live_s),
            "stock_tokens_per_s": figure(stock_tokens / stock_s),
            "live_mfu": figure(live_flops / live_s / peak, ctx.targets["mfu"]),
            "stock_mfu": figure(stock_flops / stock_s / peak),
        },
        "info": {"metrics_compared": len(detail_scores(live)), "live_tokens": live_tokens,
                 "stock_tokens": stock_tokens, "params": engine.numel, "dtype": str(engine.dtype),
                 "device": str(engine.device), "matmul_tflops": round(peak / 1e12, 2)},
    }  # fmt: skip


def part_search_workers(ctx: Ctx) -> dict[str, Any]:
    """`demix search --workers 2` on the run's components (a fresh study), both workers on one GPU."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    src = ctx.work / "run"
    cfg, _ = load_run(ctx, src)
    dst = ctx.work / "workers"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    for name in ("data", "models"):  # the run's products, read only; the study and tasks are new
        (dst / name).symlink_to(src / name)
    n = ctx.size("search")["n_trials"]
    t0 = time.perf_counter()
    demix_cli(ctx, "search", str(CONFIG), "--run-dir", str(dst), "--workers", "2", "--n-trials", str(n))
    wall = time.perf_counter() - t0
    storage = JournalStorage(JournalFileBackend(str(dst / "search" / "journal.log")))
    study = optuna.load_study(study_name=cfg.search.study_name or cfg.name, storage=storage)
    done = [
        t
        for t in study.get_trials(deepcopy=False)
        if "baseline" not in t.user_attrs and t.state.name == "COMPLETE"
    ]
    workers = {t.system_attrs.get("demix:worker") for t in done}
    return {
        "figures": {
            "trials_done": figure(len(done), n, kind="check"),
            "workers_with_trials": figure(len(workers), 2),  # a worker that loads late may find none left
            "wall_s": figure(wall),
        },
        "info": {"workers": sorted(map(str, workers)), "gpus_visible": os.environ.get("CUDA_VISIBLE_DEVICES")},
    }  # fmt: skip
