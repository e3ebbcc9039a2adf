"""The cross-stage rules, one small function each; :func:`problems` runs them all.

Each rule returns the problems it finds as ``"<key>: <what is wrong>"`` lines and never raises for a
user error, so one run of ``demix config validate`` lists everything. Rules import the registry
they check (lm-eval, mergekit) only when the config uses it.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from demix.config import ExperimentConfig
from demix.errors import ConfigError, DemixError
from demix.preflight.compare import demix_recommendation, hand_mixtures, law_swarm

if TYPE_CHECKING:
    from demix.run import RunDir

Rule = Callable[[ExperimentConfig, "RunDir | None"], list[str]]


def _sampler(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """The search's sampler can optimise the objectives asked for (demix.search.samplers)."""
    from demix.search.samplers import SINGLE_OBJECTIVE_ONLY

    s = cfg.search
    out = []
    if s.objectives == "groups" and s.sampler in SINGLE_OBJECTIVE_ONLY:
        out.append(
            f"search.sampler={s.sampler} optimises one objective, but search.objectives=groups asks for "
            "one per capability group; use tpe, gp, qmc or random, or search.objectives=single"
        )
    if s.sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        out.append("search.sampler=cmaes needs the `cmaes` package: pip install cmaes")
    return out


def _storage(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """search.storage parses as a storage URL (whether it can be reached is known only at search time)."""
    from demix.search.storage import resolve_storage

    if not cfg.search.storage:
        return []
    try:
        resolve_storage(Path("."), cfg.search.storage, cfg.search.workers)
    except DemixError:
        shown = re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", cfg.search.storage)  # hide a password
        return [f"search.storage: {shown!r} is not a storage URL"]
    return []


def _merge_method(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """merge.method is built in, or a method of the installed mergekit (demix.merge.methods)."""
    from demix.merge.methods import get_method

    try:
        get_method(cfg.merge.method)
    except DemixError as e:
        return [f"merge.method: {e}"]
    return []


def _include_paths(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """Each evaluate.include_paths entry is a directory whose task YAML files lm-eval can parse."""
    out = []
    dirs = []
    for i, p in enumerate(cfg.evaluate.include_paths):
        path = Path(p).expanduser()
        if not path.is_dir():
            what = "a file" if path.exists() else "missing"
            out.append(f"evaluate.include_paths[{i}]: {p} is {what}, not a directory of lm-eval task YAML")
        else:
            dirs.append(path)
    if dirs:
        out += _task_files(dirs)
    return out


def _task_files(dirs: list[Path]) -> list[str]:
    """The first malformed task YAML (binary, not UTF-8, not YAML, not a mapping) of each directory."""
    from demix.evaluate.harness import check_task_files

    out = []
    for d in dirs:
        try:
            check_task_files([d])
        except DemixError as e:
            out.append(f"evaluate.include_paths: {e}")
    return out


def _task_names(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """evaluate.tasks names are not built-in names and are tasks lm-eval (or an include path) defines."""
    from demix.evaluate.spec import PREFIX

    ec = cfg.evaluate
    out = []
    builtin = ec.builtin.enabled and (ec.builtin.bpb or ec.builtin.accuracy)
    for t in ec.tasks:
        if builtin and t.name.startswith(PREFIX):
            out.append(
                f"evaluate.tasks: {t.name!r}: the prefix {PREFIX} is reserved for built-in tasks (rename it)"
            )
    unknown = [
        t.name
        for t in ec.tasks
        if not t.name.startswith(PREFIX)
        and not (t.name.endswith((".yaml", ".yml")) and Path(t.name).is_file())
    ]
    unknown = _not_mentioned(ec.include_paths, unknown)
    if unknown:
        from demix.evaluate.harness import _absent_from_defaults  # the evaluate stage's own scan

        out += [
            f"evaluate.tasks: lm-eval does not know the task {n!r} (check the name, or add its YAML "
            "directory to evaluate.include_paths)"
            for n in _absent_from_defaults(unknown)
        ]
    return out


def _not_mentioned(paths: list[Path], names: list[str]) -> list[str]:
    """The names no task YAML under ``paths`` mentions (a text scan: a mention may define it; the
    evaluate stage builds the task and reports what a mention does not settle)."""
    left = list(names)
    for root in paths:
        if not left or not Path(root).expanduser().is_dir():
            continue
        for p in Path(root).expanduser().glob("**/*.yaml"):
            text = p.read_text(errors="ignore")
            left = [n for n in left if n not in text]
    return left


def _builtin_kinds(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """evaluate.builtin.kinds names candidates (checked by the task builder against the manifest)."""
    known = set(cfg.domains)
    return [
        f"evaluate.builtin.kinds: {name!r} is not a candidate ({', '.join(cfg.domains)})"
        for name in sorted(set(cfg.evaluate.builtin.kinds) - known)
    ]


def _constraints(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """Some mixture meets search.constraints, given train.beta's share of the general candidate and,
    when token counts are known (search.token_counts or the prepared manifest), the epoch cap."""
    from demix.mixture.constraints import constraints_for

    try:
        constraints_for(cfg, cfg.domains, _token_counts(cfg, run))
    except ConfigError as e:
        return [str(e)]
    return []


def _token_counts(cfg: ExperimentConfig, run: RunDir | None) -> np.ndarray | None:
    """Token counts in the config's candidate order, or ``None`` when not known before ``prepare``."""
    from demix.data.manifest import Manifest, token_counts

    try:
        m = None
        if cfg.search.token_counts is None and run is not None and run.manifest.is_file():
            m = Manifest.load(run)
            if m.names != cfg.domains:
                return None  # candidates changed since prepare: prepare runs again first
        counts = token_counts(cfg, run, cfg.domains, manifest=m)
    except DemixError:
        return None  # the stage that reads it reports a broken manifest
    return counts if counts is not None and np.all(counts > 0) else None


def _components(cfg: ExperimentConfig, run: RunDir | None) -> list[str]:
    """Components brought from elsewhere: each directory holds a checkpoint (config.json and
    safetensors headers read, no weights), their configs compute the same function, their dtypes
    agree or merge.dtype says which to use, the base model is there, and the tokenizer fits the
    embedding: what the merge would refuse later, found before anything runs."""
    from demix.merge.checkpoint import open_checkpoint
    from demix.merge.checks import check_compatible, check_tokenizer

    given = cfg.merge.components
    if not given:
        return []
    brought = cfg.components is not None
    out: list[str] = []
    opened = []
    for name, path in given.items():
        try:
            opened.append(open_checkpoint(path))
        except DemixError as e:
            out.append(f"{_checkpoint_key(cfg, name)}: {e}")
    if cfg.merge.base is not None:
        try:
            open_checkpoint(cfg.merge.base)
        except DemixError as e:
            out.append(f"{_checkpoint_key(cfg, None)}: {e}")
    if out or not opened:
        return out
    try:
        check_compatible(opened)
    except DemixError as e:
        out.append(f"{'components.candidates' if brought else 'merge.components'}: {e}")
    dtypes = {c.root: sorted({t.dtype for t in c.tensors.values()}) for c in opened}
    if cfg.merge.dtype == "auto" and len({tuple(d) for d in dtypes.values()}) > 1:
        shown = ", ".join(f"{root}: {'/'.join(d)}" for root, d in dtypes.items())
        out.append(
            f"merge.dtype: auto, but the components are stored in different dtypes ({shown}); "
            "set merge.dtype: float32 (exact) or bfloat16 (half the memory)"
        )
    tok_key = "tokenizer.name_or_path"
    tok_dir = cfg.tokenizer.name_or_path if cfg.tokenizer.kind == "pretrained" else None
    if tok_dir is not None and Path(tok_dir).is_dir():
        try:
            check_tokenizer(tok_dir, opened[0].config)
        except DemixError as e:
            out.append(f"{'components.tokenizer' if brought else tok_key}: {e}")
        out += _vocabularies(cfg, tok_dir)
    return out


def _vocabularies(cfg: ExperimentConfig, tok_dir: str | Path) -> list[str]:
    """Each brought checkpoint's own tokenizer gives the run tokenizer's tokens the same ids."""
    from demix.merge.checks import vocabulary_mismatches

    dirs: dict[str, str | Path] = {
        _checkpoint_key(cfg, n): p for n, p in (cfg.merge.components or {}).items()
    }
    if cfg.merge.base is not None:
        dirs[_checkpoint_key(cfg, None)] = cfg.merge.base
    try:
        return [f"{key}: {why}" for key, why in vocabulary_mismatches(tok_dir, dirs).items()]
    except DemixError as e:
        return [f"{'components.tokenizer' if cfg.components is not None else 'tokenizer.name_or_path'}: {e}"]


def _checkpoint_key(cfg: ExperimentConfig, name: str | None) -> str:
    """The config key that names a brought component's directory (``None``: the base model's)."""
    if name is None:
        return "components.base" if cfg.components is not None and cfg.components.base else "merge.base"
    return f"components.candidates.{name}.path" if cfg.components is not None else f"merge.components.{name}"


# The compare stage run on its own on a finished run (`demix compare RUN`): its rules check what the
# stages before it left in the run directory. Such rules run only when a command names them: never
# for `stages=None` (`demix config validate`), nor under `demix run`, where those stages run first.
COMPARE_ALONE = "compare:alone"
_ON_REQUEST = frozenset({COMPARE_ALONE})

# Each rule with the stages whose work it protects: a command checks the rules of the stages it runs
# (`demix config validate`: all; `demix run`: all but the optional stages it will not run,
# :func:`stages_but`), so `demix evaluate` is not refused for an epoch cap only the search and export
# would hit, nor `demix run` without --with-compare for the comparison's swarm.
RULES: tuple[tuple[Rule, tuple[str, ...]], ...] = (
    (_sampler, ("search",)),
    (_storage, ("search",)),
    (_merge_method, ("merge",)),
    (_components, ("merge", "evaluate", "search")),
    (_include_paths, ("evaluate",)),
    (_task_names, ("evaluate",)),
    (_builtin_kinds, ("evaluate",)),
    (_constraints, ("search", "law", "recommend", "export")),
    (law_swarm, ("compare",)),
    (hand_mixtures, ("compare",)),
    (demix_recommendation, (COMPARE_ALONE,)),
)


def stages_but(skipped: Collection[str]) -> tuple[str, ...]:
    """Every stage :data:`RULES` protect except ``skipped`` (and those checked only on request):
    what ``demix run`` checks when it will not run its optional stages ``skipped``."""
    known = {s for _, for_ in RULES for s in for_} - _ON_REQUEST
    return tuple(sorted(known - set(skipped)))


def problems(
    cfg: ExperimentConfig, run: RunDir | None = None, stages: tuple[str, ...] | None = None
) -> list[str]:
    """Every problem :data:`RULES` find, one ``key: what`` line each (empty: the config is runnable).

    Args:
        cfg: a config the schema accepted.
        run: its run directory, when it may hold prepared data (token counts for the epoch cap).
        stages: check only the rules of these stages (``None``: every rule but those of a stage
            run alone on a finished run, :data:`COMPARE_ALONE`, which only a command naming it checks).
    """
    wanted = set(stages) if stages is not None else None
    chosen = [
        rule for rule, for_ in RULES if (set(for_) - _ON_REQUEST if wanted is None else set(for_) & wanted)
    ]
    return [p for rule in chosen for p in rule(cfg, run)]


def require(
    cfg: ExperimentConfig,
    run: RunDir | None = None,
    *,
    path: Path | None = None,
    stages: tuple[str, ...] | None = None,
) -> None:
    """Raise when any rule fails.

    Raises:
        ConfigError: listing every problem (one per line when several), prefixed with ``path``.
    """
    found = problems(cfg, run, stages)
    if len(found) == 1:
        raise ConfigError(found[0], path=path)
    if found:
        raise ConfigError(f"{len(found)} problems:\n  " + "\n  ".join(found), path=path)
