"""A SQLite tracking store opened once under a file lock before any run is started in it.

MLflow creates and migrates a fresh SQLite database's schema the first time a process opens
it. Several processes doing that at once race in alembic ("table _alembic_tmp_... already
exists"), lose their runs and leave the database unusable for every later fit. Opening the
store under an exclusive lock on ``<database>.lock`` lets the first process build the schema
while the others wait; they then find it complete and only check it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["open_sqlite_store", "sqlite_database"]

LOCK_TIMEOUT_S = 300.0  # a schema migration takes seconds; minutes means a stuck process
_POLL_S = 0.05


def sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:`` tracking URI, or ``None`` for other URIs and for
    in-memory databases (nothing on disk to share, nothing to lock).

    Examples
    --------
    >>> str(sqlite_database("sqlite:////tmp/runs.db"))
    '/tmp/runs.db'
    >>> sqlite_database("http://127.0.0.1:5000") is None
    True
    """
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    # Relative to the working folder, as SQLite itself opens it.
    return Path(database).absolute()


def open_sqlite_store(uri: str, timeout: float = LOCK_TIMEOUT_S) -> None:
    """Create or migrate the schema of the SQLite store at ``uri`` while holding an exclusive
    lock on ``<database>.lock``; does nothing for other URIs.

    Parameters
    ----------
    uri : str
        The tracking URI.
    timeout : float
        Seconds to wait for another process holding the lock.

    Raises
    ------
    TimeoutError
        Another process held the lock for ``timeout`` seconds.
    """
    database = sqlite_database(uri)
    if database is None:
        return
    import mlflow

    with _exclusive_lock(database.with_name(database.name + ".lock"), timeout):
        # The first query opens the store: MLflow builds or upgrades the schema and adds the
        # default experiment, all of which race when done by several processes at once.
        mlflow.MlflowClient(uri).search_experiments(max_results=1)


@contextlib.contextmanager
def _exclusive_lock(path: Path, timeout: float) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock; open the store unlocked
        yield
        return
    # The lock file is left in place: removing it would let a waiter lock a file that a
    # newcomer no longer sees. The kernel drops the lock if its holder dies.
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another process held {path} for {timeout:.0f} s while opening the "
                        "MLflow store; if no fit is running on this database, the process "
                        "holding it is stuck: stop it") from None
                time.sleep(_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
