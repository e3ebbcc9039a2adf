"""Progress bars that suit a terminal and a batch log alike.

On a terminal a bar redraws ten times a second. Under Slurm or ``nohup`` stderr is a file, and every
redraw is another line in it: a component's 10,000 steps would write tens of thousands of them. So
off a terminal a bar redraws at most every :data:`LOG_INTERVAL_S` seconds (and at its end), unless
the user set tqdm's own ``TQDM_MININTERVAL``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

LOG_INTERVAL_S = 30.0


def min_interval(stream: Any = None) -> float | None:
    """Seconds between redraws for a bar on ``stream`` (stderr by default); None: tqdm's default."""
    if "TQDM_MININTERVAL" in os.environ:
        return None
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return None if isatty is not None and isatty() else LOG_INTERVAL_S


def bar(**kwargs: Any) -> Any:
    """A ``tqdm.auto.tqdm`` with ``kwargs``, redrawn as often as where it is written calls for."""
    from tqdm.auto import tqdm

    interval = min_interval(kwargs.get("file"))
    if interval is not None:
        kwargs.setdefault("mininterval", interval)
        kwargs.setdefault("maxinterval", max(interval, 10.0))
    return tqdm(**kwargs)
