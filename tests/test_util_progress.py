"""Progress bars off a terminal: a batch log gets a line every 30 s, not ten a second."""

from __future__ import annotations

import io

import pytest

from demix.util.progress import LOG_INTERVAL_S, bar, min_interval


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
