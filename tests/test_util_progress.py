"""Progress bars off a terminal: a batch log gets a line every 30 s, not ten a second."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from demix.util.progress import LOG_INTERVAL_S, bar, min_interval, pace_batch_logs


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_few_redraws_and_a_terminal_tqdms_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    assert min_interval(io.StringIO()) == LOG_INTERVAL_S
    assert min_interval(_Tty()) is None
    log, tty = io.StringIO(), _Tty()
    # The suite silences bars with TQDM_DISABLE (conftest), which tqdm reads once, when it is first
    # imported: only an explicit disable=False turns these two back on, whatever the import order.
    on_log, on_tty = bar(total=10, file=log, disable=False), bar(total=10, file=tty, disable=False)
    assert on_log.mininterval == LOG_INTERVAL_S and on_tty.mininterval == pytest.approx(0.1)
    for b in (on_log, on_tty):
        b.update(10)
        b.close()
    assert "10/10" in log.getvalue()  # the end is drawn however soon it comes


def test_the_users_tqdm_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    assert min_interval(io.StringIO()) is None


_LIBRARY_BAR = """
import sys, time
from demix.cli import main
assert "tqdm" not in sys.modules, "importing the CLI brought tqdm in before main() could pace it"
if sys.argv[1] == "cli":
    try:
        main(["--help"])
    except SystemExit:
        pass
import datasets
datasets.enable_progress_bars()
def slow(batch):
    time.sleep(0.02)
    return batch
datasets.Dataset.from_dict({"x": list(range(4000))}).map(slow, batched=True, batch_size=100, desc="tokenize x")
"""


def _redraws(tmp_path: Path, how: str) -> int:
    """How often a ``datasets`` bar (0.8 s of work, not demix's) is drawn into a log file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    log = tmp_path / f"{how}.log"
    with open(log, "w") as fh:
        subprocess.run(
            [sys.executable, "-c", _LIBRARY_BAR, how],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=fh,
            check=True,
            timeout=120,
        )
    return log.read_text().count("tokenize x")


def test_the_command_line_paces_the_libraries_bars_in_a_log(tmp_path: Path) -> None:
    assert _redraws(tmp_path, "plain") >= 4  # tqdm's own pace: a redraw every 0.1 s
    assert _redraws(tmp_path, "cli") <= 2  # once started, once finished


def test_pacing_leaves_a_terminal_and_the_users_setting_alone() -> None:
    env: dict[str, str] = {}
    pace_batch_logs(_Tty(), env)
    assert env == {}
    env = {"TQDM_MININTERVAL": "1"}
    pace_batch_logs(io.StringIO(), env)
    assert env == {"TQDM_MININTERVAL": "1"}
    pace_batch_logs(io.StringIO(), env := {})
    assert float(env["TQDM_MININTERVAL"]) == LOG_INTERVAL_S
