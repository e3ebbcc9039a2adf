"""Progress bars that suit a terminal and a batch log alike.

On a terminal a bar redraws ten times a second. Under Slurm or ``nohup`` stderr is a file, and every
redraw is another line in it: a component's 10,000 steps would write tens of thousands of them. So
off a terminal a bar redraws at most every :data:`LOG_INTERVAL_S` seconds (and at its end), unless
the user set tqdm's own ``TQDM_MININTERVAL``. demix's own bars do that through :func:`bar`; the
libraries' bars (datasets' loading and tokenising, lm-eval's, transformers') through
:func:`pace_batch_logs`, which the command line calls before anything imports tqdm.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import Any

LOG_INTERVAL_S = 30.0


def min_interval(stream: Any = None) -> float | None:
    """Seconds between redraws for a bar on ``stream`` (stderr by default); None: tqdm's default."""
    if "TQDM_MININTERVAL" in os.environ:
        return None
    return None if _is_terminal(stream) else LOG_INTERVAL_S


def _is_terminal(stream: Any = None) -> bool:
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return isatty is not None and bool(isatty())


def pace_batch_logs(stream: Any = None, environ: MutableMapping[str, str] | None = None) -> None:
    """Off a terminal, pace every tqdm bar of this process and of the processes it starts.

    tqdm reads ``TQDM_*`` variables once, when it is first imported, as defaults for every bar that
    does not set them itself: setting them here, first thing, reaches the bars demix cannot build
    (``datasets`` tokenising a candidate for an hour, lm-eval's, transformers' loading bars), and the
    environment carries them into torchrun ranks, search workers and ``datasets`` map processes. A
    user's own ``TQDM_MININTERVAL`` wins; on a terminal nothing changes.
    """
    environ = os.environ if environ is None else environ
    if "TQDM_MININTERVAL" in environ or _is_terminal(stream):
        return
    environ["TQDM_MININTERVAL"] = str(LOG_INTERVAL_S)
    environ.setdefault("TQDM_MAXINTERVAL", str(LOG_INTERVAL_S))  # a stalled bar: one redraw a period


def bar(**kwargs: Any) -> Any:
    """A ``tqdm.auto.tqdm`` with ``kwargs``, redrawn as often as where it is written calls for."""
    from tqdm.auto import tqdm

    interval = min_interval(kwargs.get("file"))
    if interval is not None:
        kwargs.setdefault("mininterval", interval)
        kwargs.setdefault("maxinterval", max(interval, 10.0))
    return tqdm(**kwargs)
