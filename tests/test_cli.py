"""The CLI's edge: a bad option value is a usage error (exit 2, the option named), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_CONFIG


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["search", str(TINY_CONFIG), "--n-trials", "0"], "--n-trials"),
        (["validate", str(TINY_CONFIG), "--n-mixtures", "2"], "--n-mixtures"),
        (["nosuch"], "nosuch"),
    ],
)
def test_bad_option_value_exits_2_naming_it(args: list[str], named: str) -> None:
    res = subprocess.run([sys.executable, "-m", "demix", *args], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2, res.stderr
    assert named in res.stderr
    assert "Traceback" not in res.stderr


def test_tables_keep_whole_values_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.table import Table

    from demix.cli.common import console

    table = Table()
    for i in range(12):
        table.add_column(f"column {i}")
    table.add_row(*[f"{5.0712345678 + i:.10f}" for i in range(12)])
    console().print(table)  # stdout is captured: not a terminal
    out = capsys.readouterr().out
    assert "5.0712345678" in out and "16.0712345678" in out
    assert "…" not in out


def _help(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    res = subprocess.run(
        [sys.executable, "-m", "demix", *args, "--help"], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_help_joins_wrapped_docstrings_and_keeps_placeholders() -> None:
    """Docstrings wrap at 100 columns; the help reflows them (markdown) and must not eat ``<name>``."""
    top = _help()
    assert "search, law check, recommend, export, report. Stages whose inputs" in top
    assert "(default: runs/<name>)" in _help("run")
    assert "mix:<d>" in _help("law", "fit")


def test_the_printed_mixture_keeps_its_columns_at_any_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from demix.cli.pipeline import _print_mixture

    domains = ["web", "a_long_source_name_here", "math"]
    doc = {
        "domains": domains,
        "ratios": {"web": 0.55, "a_long_source_name_here": 0.2, "math": 0.25},
        "tokens": {"web": 550_000_000_000, "a_long_source_name_here": 7_979_680_000, "math": 9},
        "epochs": {"web": 0.74, "a_long_source_name_here": 1.0, "math": None},
    }
    path = tmp_path / "recommended_mixture.json"
    path.write_text(json.dumps(doc))
    _print_mixture(path)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and len({len(ln) for ln in lines}) == 1, lines  # one width: aligned
    ends = {ln.index("550,000,000,000") + len("550,000,000,000") for ln in lines if "550" in ln}
    assert ends == {lines[2].index("7,979,680,000") + len("7,979,680,000")}  # tokens right-aligned
