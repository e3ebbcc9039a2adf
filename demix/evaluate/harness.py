"""lm-eval-harness on the live model: wrap it once, build the task dictionary once, evaluate often.

The :class:`Evaluator` holds an lm-eval ``HFLM`` around the very model object the merge engine writes
into (``lm.model is model``), so weights changed in place are what the next call evaluates. It is
demix's subclass :class:`~demix.evaluate.fastlm.LiveHFLM` (lm-eval's documented extension point), which
scores log-likelihood requests with less work and the same results (``ev.lm.fast = False`` gives
stock ``HFLM``'s computation; it also falls back by itself where its first-call probe disagrees with
stock). Each call runs ``lm_eval.evaluate`` with ``bootstrap_iters=0`` and no response cache (it is
keyed by request only and would return stale answers after the weights change); standard errors are
computed from the per-document values (:mod:`demix.evaluate.result`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from demix.config import EvalConfig, ExperimentConfig
from demix.errors import ConfigError, DemixError
from demix.evaluate.collect import collect
from demix.evaluate.result import EvalResult
from demix.evaluate.spec import EvalRole, TaskSuite
from demix.run import RunDir
from demix.util.torchenv import quiet_transformers, resolve_device, resolve_dtype

_OFFLINE_HINT = (
    "if it needs a Hub dataset and there is no network, point evaluate.include_paths at a task YAML "
    "with a local copy (dataset_path: json, dataset_kwargs: {data_files: ...})"
)


# ---- checkpoints -------------------------------------------------------------------------------------


def load_checkpoint(path: Path, ec: EvalConfig, tokenizer_dir: Path | None = None) -> tuple[Any, Any]:
    """Load any HF causal-LM checkpoint (and its tokenizer) on the configured device and dtype.

    Args:
        path: the checkpoint directory (config.json + weights).
        ec: the ``evaluate`` config (device, dtype).
        tokenizer_dir: where the tokenizer is when the checkpoint has none (e.g. the run's tokenizer).

    Raises:
        DemixError: the directory is not a loadable checkpoint.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from demix.merge import check_tokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise DemixError("not a Hugging Face checkpoint (no config.json)", path=path)
    device = resolve_device(ec.device, key="evaluate.device")
    dtype = resolve_dtype(ec.dtype, device, key="evaluate.dtype")
    try:
        with quiet_transformers():  # no per-file progress bar between the report's lines
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    except (OSError, ValueError) as e:
        raise DemixError(f"cannot load the checkpoint: {e}", path=path) from None
    except Exception as e:  # safetensors' own error (a truncated, empty or foreign file) is no OSError
        if type(e).__name__ != "SafetensorError":
            raise
        raise DemixError(f"model.safetensors: not a readable safetensors file: {e}", path=path) from None
    model.to(device).eval()  # type: ignore[arg-type]  # transformers types .to oddly
    has_tok = any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
    tok_dir = path if has_tok or tokenizer_dir is None else Path(tokenizer_dir)
    check_tokenizer(tok_dir, model.config)  # ids past the embedding would fail mid-evaluation
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    except (OSError, ValueError) as e:
        raise DemixError(f"cannot load a tokenizer: {e}", path=tok_dir) from None
    return model, tokenizer


# ---- task files and the task dictionary -------------------------------------------------------------


def check_task_files(paths: tuple[Path, ...] | list[Path]) -> None:
    """Parse every task YAML under ``paths`` as lm-eval would, so a malformed file is named.

    (lm-eval's own index skips a file it cannot parse and later reports only an unknown task.)

    Raises:
        DemixError: naming the first file that is not valid YAML or not a mapping.
    """
    from lm_eval.tasks._yaml_loader import load_yaml

    for root in paths:
        for p in sorted(Path(root).glob("**/*.yaml")):
            try:
                cfg = load_yaml(p, resolve_func=False, recursive=True)
            except Exception as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise DemixError(f"malformed lm-eval task file: {msg}", path=p) from None
            if not isinstance(cfg, dict):
                raise DemixError("malformed lm-eval task file: the top level must be a mapping", path=p)


def _known(tm: Any, name: str) -> bool:
    return name in tm.task_index or (name.endswith((".yaml", ".yml")) and Path(name).is_file())


def _absent_from_defaults(names: list[str]) -> list[str]:
    """Names that occur in none of lm-eval's own task YAML files (a cheap text scan).

    Indexing lm-eval's registry parses ~14k YAML files; a name that is not even mentioned in them is
    unknown without that cost.
    """
    if not names:
        return []
    import lm_eval.tasks

    left = set(names)
    for p in Path(lm_eval.tasks.__file__).parent.rglob("*.yaml"):
        text = p.read_text(errors="ignore")
        left = {n for n in left if n not in text}
        if not left:
            break
    return [n for n in names if n in left]


def load_task_dicts(suite: TaskSuite, ec: EvalConfig) -> dict[str, dict[str, Any]]:
    """spec name -> lm-eval task dict (``{"tasks", "groups", "group_map"}``), built once.

    lm-eval's own task registry is indexed only when a task is not found under the include paths
    (indexing it costs seconds).

    Raises:
        DemixError: an unknown task name, a task that cannot be built (its file or data named), or an
            unsafe code task without ``evaluate.confirm_run_unsafe_code``.
    """
    from lm_eval.tasks import TaskManager

    check_task_files(suite.include_paths)
    include = [str(p) for p in suite.include_paths] or None
    tm = TaskManager(include_path=include, include_defaults=False)
    missing = [s.name for s in suite if not _known(tm, s.name)]
    absent = _absent_from_defaults(missing)
    if missing and not absent:
        tm = TaskManager(include_path=include, include_defaults=True)
    for s in suite:
        if s.name in absent or not _known(tm, s.name):
            raise DemixError(
                f"evaluate.tasks: lm-eval does not know the task {s.name!r} "
                "(check the name, or add its YAML directory to evaluate.include_paths)"
            )
    if ec.confirm_run_unsafe_code:
        os.environ.setdefault("HF_ALLOW_CODE_EVAL", "1")  # the code_eval metric refuses without it
    out: dict[str, dict[str, Any]] = {}
    for s in suite:
        entry = tm.task_index.get(s.name)
        where = f" ({entry.yaml_path})" if entry is not None and entry.yaml_path else ""
        try:
            with _quiet(True):
                td = tm.load([s.name])
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DemixError(f"task {s.name!r}{where} could not be built: {msg}; {_OFFLINE_HINT}") from None
        for tname, task in td["tasks"].items():
            if getattr(task, "UNSAFE_CODE", False) and not ec.confirm_run_unsafe_code:
                raise ConfigError(
                    f"task {tname!r} executes model-written code; set evaluate.confirm_run_unsafe_code: true "
                    "to run it"
                )
            if s.num_fewshot is not None:
                task.set_config(key="num_fewshot", value=s.num_fewshot)
        out[s.name] = td
    return out


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Silence lm-eval's per-request logging and progress bars (a search calls this many times)."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("lm_eval", "datasets", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, lvl in zip(loggers, levels, strict=True):
            lg.setLevel(lvl)


def _memoize_encode(lm: Any, max_entries: int = 500_000) -> None:
    """Cache ``lm.tok_encode`` per (string, flags) on this HFLM instance.

    Every call evaluates the same requests on new weights, and lm-eval tokenizes each context and
    continuation again (about a fifth of a call on a small model). Tokenization depends only on the
    string and the tokenizer, so the cached ids are exactly what lm-eval would compute.
    """
    encode = lm.tok_encode
    cache: dict[tuple[Any, ...], tuple[int, ...]] = {}

    def tok_encode(
        string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None, **kw: Any
    ) -> list[int]:
        key = (string, add_special_tokens, left_truncate_len, tuple(sorted(kw.items())))
        ids = cache.get(key)
        if ids is None:
            if len(cache) >= max_entries:
                cache.clear()
            ids = cache[key] = tuple(
                encode(
                    string, add_special_tokens=add_special_tokens, left_truncate_len=left_truncate_len, **kw
                )
            )
        return list(ids)

    lm.tok_encode = tok_encode


# ---- the evaluator --------------------------------------------------------------------------------


class Evaluator:
    """lm-eval on a live model: built once, called once per proxy.

    Example::

        engine = engine_for_run(cfg, run)
        suite = build_tasks(cfg, run)
        ev = Evaluator(cfg, run, engine.model, tokenizer, suite)
        engine.merge(w)
        res = ev.evaluate("search")   # res.metrics["demix_math_math_search"].value, res.bpb["math"]

    Args:
        cfg: the experiment (``evaluate`` section: batch size, max length, seeds).
        run: the run directory.
        model: the live HF causal LM; evaluated in its own device and dtype (the merge engine's:
            bf16 on GPU, fp32 on CPU).
        tokenizer: its tokenizer (needs a bos or eos token: lm-eval prefixes it to every request).
        suite: the tasks (:func:`demix.evaluate.build_tasks`).
        quiet: silence lm-eval's logging and progress bars during calls.
        task_dicts: tasks already built by :func:`load_task_dicts` (to fail on bad tasks before
            loading a model); built here otherwise.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        run: RunDir,
        model: Any,
        tokenizer: Any,
        suite: TaskSuite,
        *,
        quiet: bool = True,
        task_dicts: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        from demix.evaluate.fastlm import LiveHFLM

        self.cfg = cfg
        self.run = run
        self.suite = suite
        self.model = model
        self.quiet = quiet
        ec = cfg.evaluate
        if (
            getattr(tokenizer, "bos_token_id", None) is None
            and getattr(tokenizer, "eos_token_id", None) is None
        ):
            raise DemixError("the tokenizer has neither a bos nor an eos token; lm-eval needs one")
        if getattr(tokenizer, "pad_token_id", None) is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.bos_token
        with _quiet(quiet):
            self.lm = LiveHFLM(
                pretrained=model,
                tokenizer=tokenizer,
                batch_size=ec.batch_size,
                max_length=ec.max_length,
            )
        _memoize_encode(self.lm)
        self.task_dicts = task_dicts if task_dicts is not None else load_task_dicts(suite, ec)
        self.calls = 0

    def evaluate(self, role: EvalRole = "search") -> EvalResult:
        """Evaluate the model's current weights on the tasks of ``role`` (search, report or all).

        Returns:
            EvalResult: scored tasks in ``.metrics``, bits per byte per domain in ``.bpb``.
        """
        import lm_eval

        specs = self.suite.for_role(role)
        if not specs:
            raise DemixError(f"evaluate: no tasks with role {role!r}")
        td: dict[str, Any] = {"tasks": {}, "groups": {}, "group_map": {}}
        samples: dict[str, list[int]] = {}
        for s in specs:
            d = self.task_dicts[s.name]
            for key in td:
                td[key].update(d.get(key) or {})
            for tname, task in d["tasks"].items():
                task.set_fewshot_seed(seed=self.cfg.evaluate.fewshot_seed)
                if s.limit is not None:
                    samples[tname] = list(range(min(s.limit, len(task.eval_docs))))
        self.model.eval()
        t0 = time.perf_counter()
        with _quiet(self.quiet):
            res = lm_eval.evaluate(
                lm=self.lm,
                task_dict=td,
                samples=samples or None,
                bootstrap_iters=0,
                log_samples=True,
                confirm_run_unsafe_code=self.cfg.evaluate.confirm_run_unsafe_code,
            )
        seconds = time.perf_counter() - t0
        self.calls += 1
        assert res is not None  # single process: rank 0
        return collect(res, specs, self.task_dicts, seconds, role, self.cfg.evaluate.stderr_bootstrap)
