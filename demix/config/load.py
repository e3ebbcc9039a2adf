"""Reading an experiment YAML: recipes, ``--set`` overrides, and errors that name the key."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from demix.config.base import holder
from demix.config.experiment import ExperimentConfig
from demix.errors import ConfigError, DataError
from demix.util.io import read_text

RECIPES = "recipes"  # shipped corpora recipes: demix/recipes/<name>.yaml, read with importlib.resources


def read_text_file(path: Path, what: str = "config file") -> str:
    """The UTF-8 text of a YAML file a user handed demix (:func:`demix.util.io.read_text`).

    Raises:
        ConfigError: missing, a directory, unreadable, binary, not UTF-8, or empty.
    """
    if not path.exists() and not path.is_dir():
        raise ConfigError(f"no such {what}", path=path)
    try:
        return read_text(path, what)
    except DataError as e:
        raise ConfigError(str(e)) from None


def _parse_yaml(text: str, where: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where_at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where_at}: {getattr(e, 'problem', e)}", path=where) from None
    except RecursionError:
        raise ConfigError("not valid YAML: nested too deeply", path=where) from None
    if data is None:
        raise ConfigError("holds only comments (expected a mapping of sections)", path=where)
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections", path=where)
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    return _parse_yaml(read_text_file(path, "config file"), path)


def shipped_recipes() -> list[str]:
    """Names of the recipes that ship with demix (``demo``, ``redpajama-7``, ...)."""
    root = resources.files("demix").joinpath(RECIPES)
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def recipe_text(name: str) -> str:
    """The YAML text of the shipped recipe ``name``.

    Raises:
        ConfigError: no recipe of that name ships with demix.
    """
    res = resources.files("demix").joinpath(RECIPES, f"{name}.yaml")
    if not res.is_file():
        known = ", ".join(shipped_recipes())
        raise ConfigError(f"corpora.recipe: no recipe named {name!r} (shipped: {known}; or give a path)")
    return res.read_text(encoding="utf-8")


def _load_recipe(name: str, config_path: Path | None) -> tuple[dict[str, Any], str]:
    """A recipe's mapping and where it came from: a path (``my/corpora.yaml``, relative to the
    working directory or else to the config's directory) or the name of a shipped recipe."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        direct = Path(name).expanduser()
        if not direct.is_absolute() and not direct.exists() and config_path is not None:
            beside = config_path.resolve().parent / direct
            direct = beside if beside.exists() else direct
        try:
            return _parse_yaml(read_text_file(direct, "recipe file"), direct), str(direct)
        except ConfigError as e:
            raise ConfigError(f"corpora.recipe: {e}", path=config_path) from None
    try:
        text = recipe_text(name)
    except ConfigError as e:
        raise ConfigError(str(e), path=config_path) from None
    where = f"{RECIPES}/{name}.yaml (shipped)"
    return _parse_yaml(text, where), where


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
    node = holder(data, parts)
    if isinstance(node, str):
        raise ConfigError(f"{what}: {node!r} is not a section")
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
        parts = prefix + tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        loc = _format_loc(parts)
        msg = e["msg"].removeprefix("Value error, ")
        if not parts and msg.split(":", 1)[0].count(".") >= 1:
            msgs.append(msg)  # a cross-section rule whose message names its key itself
            continue
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
        recipe, recipe_path = _load_recipe(str(corpora["recipe"]), path)
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
