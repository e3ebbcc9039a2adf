"""pid_alive: this process is alive; a finished child is not; a zombie child is not."""

from __future__ import annotations

import os
import subprocess
import sys

from demix.util.process import pid_alive


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert not pid_alive(done.pid)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not pid_alive(zombie.pid)
    zombie.wait()
