"""``demix merge`` through the real console entry: the export matches mergekit's linear merge, and
every bad input ends with exit code 2 and one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.test_merge import save_components, tiny_model

REPO = Path(__file__).resolve().parents[1]
DOMAINS = ["prose", "code", "math", "comments", "tables"]  # the tiny config's candidates


def write_config(tmp_path: Path, components: list[Path], **merge: object) -> Path:
    data = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    data["run_dir"] = str(tmp_path / "run")
    data["merge"] = {"components": {d: str(p) for d, p in zip(DOMAINS, components, strict=True)}, **merge}
    path = tmp_path / "merge.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def demix(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "demix", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def assert_user_error(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def bf16_components(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return save_components(tmp_path_factory.mktemp("bf16"), len(DOMAINS), dtype=torch.bfloat16)


def test_export_matches_mergekit_linear(tmp_path: Path, bf16_components: list[Path]) -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    w = {"prose": 0.3, "code": 0.1, "math": 0.25, "comments": 0.05, "tables": 0.3}
    cfg = write_config(tmp_path, bf16_components, dtype="bfloat16")
    out = tmp_path / "proxy"
    res = demix("merge", cfg, "--weights", ",".join(f"{k}={v}" for k, v in w.items()), "--out", out)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout

    mk = MergeConfiguration.model_validate(
        {
            "merge_method": "linear",
            "dtype": "bfloat16",
            "models": [
                {"model": str(p), "parameters": {"weight": w[d]}}
                for d, p in zip(DOMAINS, bf16_components, strict=True)
            ],
        }
    )
    run_merge(mk, str(tmp_path / "mergekit"), options=MergeOptions(copy_tokenizer=False, quiet=True))
    expected = load_file(str(tmp_path / "mergekit" / "model.safetensors"))

    model = AutoModelForCausalLM.from_pretrained(out)
    got = model.state_dict()
    assert model.dtype == torch.bfloat16
    for name, v in expected.items():  # both round an fp32 sum once to bf16: within one bf16 ulp
        torch.testing.assert_close(got[name].float(), v.float(), rtol=2**-7, atol=1e-6, msg=name)
    assert (out / "demix_merge.json").is_file()


def test_task_arithmetic_without_normalising(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    comps = save_components(tmp_path / "c", len(DOMAINS))
    base = tmp_path / "base"
    tiny_model(42).save_pretrained(base)
    cfg = write_config(tmp_path, comps, base=str(base))
    out = tmp_path / "ta"
    res = demix(
        "merge",
        cfg,
        "--weights",
        "prose=0.5,tables=0.25",
        "--method",
        "task_arithmetic",
        "--no-normalize",
        "--out",
        out,
    )
    assert res.returncode == 0, res.stderr
    sd = {p: AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (base, comps[0], comps[4], out)}
    k = "model.layers.1.mlp.up_proj.weight"
    exp = sd[base][k] + 0.5 * (sd[comps[0]][k] - sd[base][k]) + 0.25 * (sd[comps[4]][k] - sd[base][k])
    torch.testing.assert_close(sd[out][k], exp, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "needles"),
    [
        ("prose=0.5,code=-0.2", ("code=-0.2",)),
        ("prose=0.5,code=nan", ("code=nan",)),
        ("0.5,0.5", ("'0.5' is not name=value",)),  # one syntax: bare values are not weights
        ("prose=0,code=0", ("all zero",)),
        ("prose=1,poetry=1", ("unknown domain 'poetry'",)),
    ],
)
def test_bad_weights_exit_2(
    tmp_path: Path, bf16_components: list[Path], weights: str, needles: tuple[str, ...]
) -> None:
    cfg = write_config(tmp_path, bf16_components)
    assert_user_error(demix("merge", cfg, "--weights", weights, "--out", tmp_path / "o"), *needles)
    assert not (tmp_path / "o").exists()


def test_no_normalize_with_linear_is_a_config_error(tmp_path: Path, bf16_components: list[Path]) -> None:
    # --no-normalize sets merge.normalize through the validated config, like --set would.
    res = demix("merge", write_config(tmp_path, bf16_components), "--weights", "prose=1", "--no-normalize",
                "--out", tmp_path / "o")  # fmt: skip
    assert_user_error(res, "merge.normalize=false only makes sense with method=task_arithmetic")
    assert not (tmp_path / "o").exists()


def test_mismatched_components_exit_2(tmp_path: Path, bf16_components: list[Path]) -> None:
    odd = tmp_path / "odd"
    tiny_model(7, hidden=48, dtype=torch.bfloat16).save_pretrained(odd)
    cfg = write_config(tmp_path, [*bf16_components[:3], odd, bf16_components[4]])
    res = demix("merge", cfg, "--weights", "prose=1", "--out", tmp_path / "o")
    assert_user_error(res, "hidden_size", str(bf16_components[0]), str(odd))


def test_truncated_file_exit_2(tmp_path: Path) -> None:
    comps = save_components(tmp_path / "c", len(DOMAINS))
    f = comps[2] / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    res = demix("merge", write_config(tmp_path, comps), "--weights", "prose=1", "--out", tmp_path / "o")
    assert_user_error(res, "truncated or corrupt", str(f))
