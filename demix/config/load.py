"""Reading an experiment YAML: recipes, ``--set`` overrides, and errors that name the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from demix.config.experiment import ExperimentConfig
from demix.errors import ConfigError

RECIPE_DIRS = ("corpora",)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("no such config file", path=path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(e, 'problem', e)}", path=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections", path=path)
    return data


def find_recipe(name: str, config_path: Path | None = None) -> Path:
    """Locate a corpora recipe by name (``demo``) or path (``corpora/demo.yaml``)."""
    direct = Path(name)
    if direct.suffix in (".yaml", ".yml") and direct.is_file():
        return direct
    roots = [Path.cwd()]
    if config_path is not None:
        roots += [config_path.resolve().parent, config_path.resolve().parent.parent]
    roots.append(Path(__file__).resolve().parents[2])  # the source checkout
    for root in roots:
        for sub in RECIPE_DIRS:
            p = root / sub / f"{name}.yaml"
            if p.is_file():
                return p
    raise ConfigError(f"corpora.recipe: no recipe named {name!r} (looked in corpora/)", path=config_path)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``train.lr=3e-4`` -> (["train", "lr"], 0.0003); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=3e-4")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set KEY=VALUE`` strings (values parsed as YAML) to a raw config mapping, in order."""
    for item in overrides:
        parts, value = parse_override(item)
        _set(data, parts, value, f"--set {item!r}")
    return data


def apply_values(
    data: dict[str, Any], values: Mapping[str, Any], *, only_unset: bool = False
) -> dict[str, Any]:
    """Set dotted keys (``merge.method``) of a raw config mapping to already-typed values.

    What a command-line flag that shadows a config key goes through, so the result is validated
    with the rest of the config. ``None`` values are skipped (the flag was not given). With
    ``only_unset`` a key the mapping already sets to something other than null is left alone (a
    command's own default for a key).
    """
    for key, value in values.items():
        if value is None:
            continue
        parts = [p for p in key.split(".") if p]
        if only_unset and _get(data, parts) is not None:
            continue
        _set(data, parts, value, key)
    return data


def _get(data: dict[str, Any], parts: list[str]) -> Any:
    node: Any = data
    for p in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(p)
    return node


def _set(data: dict[str, Any], parts: list[str], value: Any, what: str) -> None:
    node = data
    for p in parts[:-1]:
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{what}: {p!r} is not a section")
        node = child
    node[parts[-1]] = value


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out.replace("validate_", "validate") or "(top level)"


def format_validation_error(err: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """One line per problem, each naming the key: ``train.lr: Input should be greater than 0``.

    ``prefix``: the section a sub-model was validated as (``("law",)`` for a bare LawConfig).
    """
    msgs = []
    for e in err.errors():
        loc = _format_loc(
            prefix + tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        )
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif "input" in e and not isinstance(e["input"], dict | list):
            msg += f" (got {e['input']!r})"
        msgs.append(f"{loc}: {msg}")
    return "; ".join(msgs)


def config_from_dict(data: dict[str, Any], *, path: Path | None = None) -> ExperimentConfig:
    """Validate a config mapping, resolving ``corpora.recipe`` first."""
    corpora = data.get("corpora")
    if isinstance(corpora, dict) and corpora.get("recipe"):
        recipe_path = find_recipe(str(corpora["recipe"]), path)
        recipe = _read_yaml(recipe_path)
        unknown = set(recipe) - {"candidates", "general", "description"}
        if unknown:
            raise ConfigError(f"unknown key(s) in recipe: {', '.join(sorted(unknown))}", path=recipe_path)
        merged = {k: v for k, v in recipe.items() if k != "description"}
        merged.update({k: v for k, v in corpora.items() if v is not None})
        data = {**data, "corpora": merged}
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e), path=path) from None


def load_config(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    values: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> ExperimentConfig:
    """Read, override and validate an experiment YAML.

    Args:
        path: the YAML file.
        overrides: ``KEY=VALUE`` strings (``train.lr=3e-4``); values are parsed as YAML.
        values: dotted key -> typed value, applied after ``overrides`` (a command's flags that
            shadow config keys; ``None`` means not given).
        defaults: dotted key -> value for keys the file and ``overrides`` leave unset or null.

    Raises:
        ConfigError: naming the file and the key at fault.
    """
    path = Path(path)
    data = apply_overrides(_read_yaml(path), overrides or [])
    apply_values(data, values or {})
    apply_values(data, defaults or {}, only_unset=True)
    return config_from_dict(data, path=path)


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML (what ``runs/<name>/config.yaml`` holds)."""
    data = cfg.model_dump(mode="json", by_alias=True, exclude_none=False)
    return yaml.safe_dump(data, sort_keys=False)
