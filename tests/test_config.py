"""Config validation: errors name the file and key (exit code 2, one line), overrides, shipped configs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from demix.config import ExperimentConfig, dump_config, load_config
from demix.errors import ConfigError
from tests.conftest import REPO, TINY_CONFIG

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
RECIPES = sorted((REPO / "demix" / "recipes").glob("*.yaml"))


def _demix(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "demix", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _write(tmp_path: Path, data: dict[str, object], name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _tiny(**corpora: object) -> dict[str, object]:
    data = yaml.safe_load(TINY_CONFIG.read_text())
    data["corpora"].update(corpora)
    return data


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates_and_explains_itself(path: Path) -> None:
    cfg = load_config(path)
    assert len(cfg.domains) >= 2 and cfg.general in cfg.domains
    lines = path.read_text().splitlines()
    head = "\n".join(lines[:6])
    assert lines[0].startswith("#") and f"demix run {path.relative_to(REPO)}" in head
    assert "--set" in head  # an override example
    # What runs/<name>/config.yaml holds loads back to the same config.
    again = ExperimentConfig.model_validate(yaml.safe_load(dump_config(cfg)))
    assert again == cfg


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_validates(path: Path, tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, {"name": "r", "corpora": {"recipe": str(path)}}))
    recipe = yaml.safe_load(path.read_text())
    assert cfg.domains == [c["name"] for c in recipe["candidates"]]
    assert cfg.general == recipe["general"] and recipe["description"]
    assert all(c.group in ("general", "code", "math") for c in cfg.corpora.candidates)


def test_demo_recipe_has_five_builtin_domains_and_all_groups() -> None:
    cfg = load_config(REPO / "configs" / "demo.yaml")
    assert len(cfg.domains) >= 5
    assert all(s.builtin for c in cfg.corpora.candidates for s in c.sources)
    assert {c.group for c in cfg.corpora.candidates} == {"general", "code", "math"}


def test_set_overrides_any_key() -> None:
    cfg = load_config(
        TINY_CONFIG,
        ["train.lr=3e-4", "corpora.builtin_bytes=2M", "tokenizer.vocab_size=2048", "corpora.general=code"],
    )
    assert cfg.train.lr == 3e-4 and cfg.corpora.builtin_bytes == 2_000_000
    assert cfg.tokenizer.vocab_size == 2048 and cfg.general == "code"
    with pytest.raises(ConfigError, match=r"tiny\.yaml: tokenizer\.vocab_sise: unknown key"):
        load_config(TINY_CONFIG, ["tokenizer.vocab_sise=10"])
    with pytest.raises(ConfigError, match=r"corpora\.general: .*'nope' is not a candidate"):
        load_config(TINY_CONFIG, ["corpora.general=nope"])
    with pytest.raises(ConfigError, match=r"evaluate\.builtin\.objective_domains: 'nope' is not a candidate"):
        load_config(TINY_CONFIG, ["evaluate.builtin.objective_domains=[prose,nope]"])


def test_flag_values_go_through_validation_after_set() -> None:
    # What a command's flags that shadow config keys use (demix.cli.common.load's flags/defaults).
    cfg = load_config(
        TINY_CONFIG,
        ["search.n_trials=3", "merge.compile=true"],
        values={"search.n_trials": 5, "search.workers": None, "validate.mixtures": 4},
        defaults={"merge.compile": False, "merge.method": "ties"},
    )
    assert cfg.search.n_trials == 5 and cfg.search.workers == 1  # None: the flag was not given
    assert cfg.validate_.mixtures == 4
    assert cfg.merge.compile is True and cfg.merge.method == "ties"  # defaults fill only what is unset
    assert load_config(TINY_CONFIG, defaults={"merge.compile": False}).merge.compile is False
    with pytest.raises(ConfigError, match=r"merge: merge\.normalize=false only makes sense"):
        load_config(TINY_CONFIG, values={"merge.normalize": False})
    with pytest.raises(ConfigError, match=r"search\.n_trials: Input should be greater than 0"):
        load_config(TINY_CONFIG, values={"search.n_trials": 0})


def test_unknown_builtin_domain_is_a_config_error_without_loading_corpora(tmp_path: Path) -> None:
    data = _tiny(recipe=None, candidates=[
        {"name": "a", "sources": [{"builtin": "prose"}]}, {"name": "b", "sources": [{"builtin": "poetry"}]},
    ], general="a")  # fmt: skip
    res = _demix("config", "validate", str(_write(tmp_path, data)))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "corpora.candidates[1].sources[0]: builtin: no built-in domain 'poetry'" in res.stderr
    assert "(known: code, comments, math, prose, tables)" in res.stderr


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"corpora": {"recipe": "demo", "builtin_byts": "1M"}}, "corpora.builtin_byts: unknown key"),
        ({"tokenizer": {"vocab_size": "lots"}}, "tokenizer.vocab_size: "),
        ({"corpora": {"recipe": "demo", "builtin_bytes": -5}}, "corpora.builtin_bytes: "),
        ({"corpora": {"recipe": "demo", "val_fraction": 0.9}}, "corpora.val_fraction: "),
        ({"corpora": {"recipe": "demo", "candidates": [{"name": "a", "sources": []}]}}, "sources"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, change: dict[str, dict[str, object]], needle: str) -> None:
    data: dict[str, object] = {"name": "bad", **change}
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, proc.stderr
    assert err.startswith("error: ")
    for needle in needles:
        assert needle in err, err


def test_cli_unknown_key_exits_2(tmp_path: Path) -> None:
    data = _tiny()
    data["train"]["learning_rate"] = 1e-3  # type: ignore[index]
    path = _write(tmp_path, data)
    _assert_one_line_error(
        _demix("config", "validate", str(path)), str(path), "train.learning_rate: unknown key"
    )


def test_cli_negative_size_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, _tiny(builtin_bytes="-3M"))
    _assert_one_line_error(_demix("prepare", str(path)), str(path), "corpora.builtin_bytes")


def test_cli_missing_source_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "math.jsonl"
    data = {
        "name": "missing",
        "run_dir": str(tmp_path / "run"),
        "corpora": {
            "general": "prose",
            "candidates": [
                {"name": "prose", "sources": [{"builtin": "prose"}]},
                {"name": "mymath", "sources": [{"path": str(missing)}]},
            ],
        },
    }
    path = _write(tmp_path, data)
    _assert_one_line_error(
        _demix("prepare", str(path)), "corpora.candidates[mymath].sources[0].path", str(missing)
    )
    assert not (tmp_path / "run" / "data" / "manifest.json").exists()


def test_cli_set_override_and_validate(tmp_path: Path) -> None:
    proc = _demix("config", "validate", str(TINY_CONFIG), "--set", "corpora.general=math")
    assert proc.returncode == 0 and "general=math" in proc.stdout
    _assert_one_line_error(
        _demix("config", "validate", str(TINY_CONFIG), "--set", "tokenizer.vocab_size=-1"),
        "tokenizer.vocab_size",
    )


def test_validate_reports_every_later_rule_at_once_naming_each_key(tmp_path: Path) -> None:
    proc = _demix(
        "config", "validate", str(TINY_CONFIG),
        "--set", "search.sampler=demix", "--set", "search.objectives=groups",
        "--set", "merge.method=nonsense",
        "--set", "search.constraints.max={prose: 0.2}",
        "--set", f"evaluate.include_paths=[{tmp_path / 'no-tasks'}]",
        "--set", "search.storage=postgresql://u:secret@host:notaport/db",
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    err = proc.stderr
    assert err.startswith(f"error: {TINY_CONFIG}: 5 problems:")
    for key in ("search.sampler=demix", "merge.method", "search.constraints", "evaluate.include_paths[0]"):
        assert key in err, err
    assert "search.storage" in err and "secret" not in err


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["search.sampler=demix", "search.objectives=groups"], "search.sampler=demix"),
        (["search.sampler=cmaes", "search.objectives=groups"], "search.sampler=cmaes"),
        (["merge.method=nonsense"], "merge.method: "),
        (["search.constraints.fixed={prose: 0.3}"], "beta=0.5 prose"),  # beta already gives prose 0.5
        (["search.constraints.groups=[{domains: [code, math], min: 0.9}]"], "search.constraints"),
        # the epoch cap once token counts are known: 4 epochs of 1000 tokens cannot fill 1M tokens
        (
            ["search.token_counts={prose: 1000, code: 1000, math: 1000, comments: 1000, tables: 1000}"],
            "epoch cap",
        ),
        (["evaluate.tasks=[{name: demix_bpb_prose}]"], "the prefix demix_ is reserved for built-in tasks"),
        (["evaluate.builtin.kinds={poetry: cloze}"], "evaluate.builtin.kinds: 'poetry'"),
    ],
)
def test_rules_of_later_stages_fail_load(sets: list[str], needle: str) -> None:
    from demix.cli.common import load

    with pytest.raises(ConfigError, match=re.escape(needle)):
        load(TINY_CONFIG, sets)
    cfg, _ = load(TINY_CONFIG, sets, check=False)  # the schema alone accepts them
    assert cfg.name == "tiny"


def test_shipped_configs_pass_every_rule() -> None:
    from demix.preflight import problems

    for path in [TINY_CONFIG, REPO / "configs" / "demo.yaml"]:
        assert problems(load_config(path)) == []


def test_recipes_ship_in_the_package_and_load_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import resources

    from demix.config.load import recipe_text, shipped_recipes

    assert shipped_recipes() == sorted(p.stem for p in RECIPES) and "demo" in shipped_recipes()
    assert resources.files("demix").joinpath("recipes", "demo.yaml").is_file()
    monkeypatch.chdir(tmp_path)  # no corpora/ or configs/ here
    assert load_config(TINY_CONFIG).domains == load_config(REPO / "configs" / "demo.yaml").domains
    # a recipe given as a path: relative to the working directory, else to the config's directory
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "mine.yaml").write_text(
        recipe_text("demo").replace("general: prose", "general: code")
    )
    path = _write(tmp_path / "cfg", {"name": "mine", "corpora": {"recipe": "mine.yaml"}})
    assert load_config(path).general == "code"


def test_config_recipe_prints_a_shipped_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    from demix.cli import main

    with pytest.raises(SystemExit) as e:
        main(["config", "recipe", "demo"])
    assert e.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out)["general"] == "prose"
    with pytest.raises(SystemExit) as e:
        main(["config", "recipe", "nope"])
    assert e.value.code == 2 and "'nope'" in capsys.readouterr().err


def test_task_names_are_looked_up_in_include_paths_then_lm_eval(tmp_path: Path) -> None:
    from demix.cli.common import load

    (tmp_path / "mine.yaml").write_text("group: my_group\ntask:\n  - my_task_a\n")
    sets = [f"evaluate.include_paths=[{tmp_path}]", "evaluate.builtin.accuracy_objective=true"]
    tasks = (
        "evaluate.tasks=[{name: my_group}, {name: my_task_a, role: report}, {name: arc_easy, role: report}]"
    )
    load(TINY_CONFIG, [*sets, tasks])  # defined under the include path, or by lm-eval itself
    with pytest.raises(ConfigError, match="lm-eval does not know the task 'no_such_task_zz'"):
        load(TINY_CONFIG, [*sets, "evaluate.tasks=[{name: no_such_task_zz}]"])


def test_a_command_checks_the_rules_of_the_stages_it_runs() -> None:
    from demix.preflight import problems

    cfg = load_config(TINY_CONFIG, ["search.constraints.max={prose: 0.2}", "merge.method=nonsense"])
    keys = lambda found: {p.split(":")[0].split("=")[0] for p in found}  # noqa: E731
    assert keys(problems(cfg)) == {"search.constraints", "merge.method"}
    assert keys(problems(cfg, stages=("merge", "evaluate"))) == {"merge.method"}  # demix evaluate
    assert keys(problems(cfg, stages=("export",))) == {"search.constraints"}
    assert problems(cfg, stages=()) == []  # demix prepare / train
