"""Where the study lives, and the bookkeeping that makes many workers and crashes safe.

- One worker: an SQLite file ``search/study.db``. Several workers on one machine: a journal file
  ``search/journal.log`` (SQLite is not meant for parallel writers). Several machines: any Optuna
  storage URL, e.g. ``postgresql://user:pw@host/db``; RDB storages get heartbeats, and a trial whose
  worker stopped beating is failed and retried (:func:`retry_stale`, Optuna's heartbeat callback).
- The budget is a set of *tickets*: WAITING trials created once, each with a ``demix:slot`` number.
  Workers only pop tickets (an atomic WAITING -> RUNNING swap in every Optuna storage), so the number
  of search trials is exact however many workers race, and a rerun tops the tickets up.
- Every popped trial records ``demix:worker`` = host:pid. On start, RUNNING trials of this host
  whose process is gone are marked FAIL and re-enqueued with the same parameters (retry), so a
  search killed with kill -9 resumes with no completed trial lost and none duplicated.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from demix.errors import DemixError
from demix.util.process import pid_alive

if TYPE_CHECKING:
    import optuna

SLOT = "demix:slot"
WORKER = "demix:worker"
BASELINE = "baseline"  # user attr naming the baseline a trial records
HEARTBEAT_S = 10  # RDB heartbeat interval; a trial silent for 3x this is failed and retried
MAX_RETRY = 3
JOURNAL_LOCK_GRACE_S = 5


@dataclass(frozen=True)
class StorageSpec:
    """A resolved storage: its kind, the URL or file, and the text safe to print."""

    kind: Literal["sqlite", "journal", "rdb"]
    target: str  # URL (sqlite, rdb) or journal file path
    shown: str  # password hidden

    @property
    def dashboard(self) -> str:
        """What to pass to ``optuna-dashboard``."""
        return self.target if self.kind != "rdb" else self.shown


def resolve_storage(search_dir: Path, url: str | None, workers: int) -> StorageSpec:
    """Pick the storage: the URL given, else the run's existing study file, else by worker count."""
    if url:
        if "://" in url:
            if url.startswith("sqlite:"):
                return StorageSpec("sqlite", url, url)
            from sqlalchemy.engine import make_url

            url = with_driver(url)
            try:
                shown = make_url(url).render_as_string(hide_password=True)
            except Exception:
                raise DemixError(f"--storage / search.storage: {url!r} is not a storage URL") from None
            return StorageSpec("rdb", url, shown)
        p = Path(url)
        if p.suffix in (".db", ".sqlite", ".sqlite3"):
            return StorageSpec("sqlite", f"sqlite:///{p.resolve()}", str(p))
        return StorageSpec("journal", str(p.resolve()), str(p))
    db, journal = search_dir / "study.db", search_dir / "journal.log"
    if db.is_file() and not journal.is_file():
        return StorageSpec("sqlite", f"sqlite:///{db.resolve()}", str(db))
    if journal.is_file() or workers > 1:
        return StorageSpec("journal", str(journal.resolve()), str(journal))
    return StorageSpec("sqlite", f"sqlite:///{db.resolve()}", str(db))


def with_driver(url: str) -> str:
    """``postgresql://`` means psycopg (v3) to SQLAlchemy 2.1; use psycopg2 when only it is installed."""
    import importlib.util

    plain = url.startswith("postgresql://")
    if plain and importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def open_storage(spec: StorageSpec) -> optuna.storages.BaseStorage:
    """Connect; an unreachable URL is a user error naming it.

    Raises:
        DemixError: the storage cannot be opened.
    """
    import optuna
    from optuna.storages import RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock, JournalStorage

    try:
        if spec.kind == "journal":
            Path(spec.target).parent.mkdir(parents=True, exist_ok=True)
            # Writes hold the lock for milliseconds; one left by a killed process is broken after 5 s.
            lock = JournalFileSymlinkLock(spec.target, grace_period=JOURNAL_LOCK_GRACE_S)
            return JournalStorage(JournalFileBackend(spec.target, lock_obj=lock))
        if spec.kind == "sqlite":
            path = spec.target.removeprefix("sqlite:///")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return RDBStorage(spec.target, engine_kwargs={"creator": _sqlite_connect(path)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                spec.target,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=3 * HEARTBEAT_S,
                heartbeat_stale_trial_callback=retry_stale,
                engine_kwargs={"pool_pre_ping": True},
            )
    except optuna.exceptions.StorageInternalError as e:
        raise DemixError(f"storage {spec.shown}: cannot be opened: {_root_cause(e)}") from None
    except Exception as e:  # sqlalchemy / driver errors: bad host, auth, missing database
        if isinstance(e, DemixError):
            raise
        raise DemixError(f"storage {spec.shown}: cannot be reached: {_root_cause(e)}") from None


def _sqlite_connect(path: str) -> Callable[[], Any]:
    """SQLite in WAL mode with synchronous=NORMAL: a commit survives a killed process without an
    fsync each (20 ms per commit on a busy disk, about 20 commits per trial)."""

    def connect() -> Any:
        import sqlite3

        con = sqlite3.connect(path, timeout=60, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    return connect


def heartbeat_enabled(storage: Any) -> bool:
    """Whether the storage beats. A study holds its RDB storage inside Optuna's caching wrapper
    (``_CachedStorage``), which is no ``RDBStorage`` but passes the heartbeat through: ask Optuna."""
    try:
        from optuna.storages import is_heartbeat_enabled  # type: ignore[attr-defined]
    except ImportError:  # optuna < 5.2 keeps it private
        from optuna.storages._heartbeat import is_heartbeat_enabled
    return bool(is_heartbeat_enabled(storage))


def _root_cause(e: BaseException) -> str:
    while e.__cause__ is not None or e.__context__ is not None:
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _is_stale_here(trial: optuna.trial.FrozenTrial, host: str, live: set[int]) -> bool:
    who = trial.system_attrs.get(WORKER)
    if who is None:
        return True  # popped but killed before it could say by whom
    h, _, pid = str(who).rpartition(":")
    return h == host and int(pid) not in live and not pid_alive(int(pid))


def recover_stale(
    study: optuna.Study, spec: StorageSpec, names: Sequence[str], live: set[int] | None = None
) -> list[int]:
    """Fail the RUNNING trials of dead workers on this host and enqueue their retries.

    A retry keeps the parameters when the trial had drawn all of ``names``; one killed while drawing
    them gets a fresh ticket with the same slot.

    On RDB storages other hosts' trials are left to the heartbeat; unattributed RUNNING trials are
    only taken as stale on single-machine storages (SQLite, journal).

    Returns:
        Numbers of the trials marked failed.
    """
    import optuna

    host = socket.gethostname()
    live = live or set()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.system_attrs.get(WORKER) is None and spec.kind == "rdb":
            continue
        if not _is_stale_here(t, host, live):
            continue
        try:
            ok = study._storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        if not ok:
            continue
        failed.append(t.number)
        _enqueue_retry(study, t, whole=set(names) <= set(t.params))
    return failed


def _enqueue_retry(study: optuna.Study, t: optuna.trial.FrozenTrial, *, whole: bool) -> None:
    """A WAITING copy of the failed trial ``t`` (same slot; its parameters when it had drawn them
    all), unless it has been retried ``MAX_RETRY`` times already."""
    import optuna

    history = [*t.system_attrs.get("retry_history", []), t.number]
    if len(history) > MAX_RETRY:
        return
    attrs = {k: v for k, v in t.system_attrs.items() if k != WORKER}
    attrs.update({"failed_trial": history[0], "retry_history": history})
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=t.params if whole else None,
            distributions=t.distributions if whole else None,
            user_attrs={k: v for k, v in t.user_attrs.items() if k == BASELINE},
            system_attrs=attrs,
        )
    )


def retry_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Optuna's heartbeat callback: a trial whose worker stopped beating (another machine's, or one
    killed) was just failed; re-enqueue it the way :func:`recover_stale` does. The parameter names
    are those of the study's complete trials (the baselines draw every one)."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    names = {n for c in done for n in c.params}
    _enqueue_retry(study, trial, whole=bool(names) and names <= set(trial.params))


def ensure_tickets(study: optuna.Study, n_trials: int) -> int:
    """Top the WAITING tickets up so that done + pending search trials == n_trials.

    Returns:
        How many tickets were added.
    """
    import optuna

    S = optuna.trial.TrialState
    done = pending = 0
    top = -1
    for t in study.get_trials(deepcopy=False):
        if BASELINE in t.user_attrs:
            continue
        slot = t.system_attrs.get(SLOT)
        if slot is not None:
            top = max(top, int(slot))
        if t.state == S.COMPLETE:
            done += 1
        elif t.state in (S.WAITING, S.RUNNING):
            pending += 1
    need = n_trials - done - pending
    if need > 0:
        study.add_trials(
            [
                optuna.trial.create_trial(state=S.WAITING, system_attrs={SLOT: top + 1 + i})
                for i in range(need)
            ]
        )
    return max(need, 0)


def pop_ticket(study: optuna.Study) -> int | None:
    """Atomically claim a WAITING trial (retries first, then the lowest slot); None when none is left."""
    import optuna

    waiting = study._storage.get_all_trials(
        study._study_id, deepcopy=False, states=(optuna.trial.TrialState.WAITING,)
    )
    waiting.sort(
        key=lambda t: ("failed_trial" not in t.system_attrs, t.system_attrs.get(SLOT, 1 << 30), t.number)
    )
    for t in waiting:
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.RUNNING):
                beats: Any = study._storage
                if heartbeat_enabled(beats):  # a trial never beaten is never found stale
                    beats.record_heartbeat(t._trial_id)
                study._storage.set_trial_system_attr(t._trial_id, WORKER, worker_id())
                return t._trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial_id: int) -> Iterator[None]:
    """Beat for a trial while it runs (RDB storages with heartbeats; a no-op elsewhere)."""
    storage: Any = study._storage
    interval = storage.get_heartbeat_interval() if heartbeat_enabled(storage) else None
    if not interval:
        yield
        return
    stop = threading.Event()
    storage.record_heartbeat(trial_id)  # before the trial runs: a process killed now is found stale

    def beat() -> None:
        while not stop.wait(interval):
            storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
