"""The registry's write lock, held across every process of one installation.

Changes that check the registry before they write (an alias's version exists, a version
has no alias, a job's version is not registered yet) must not interleave with another
change: MLflow's store has no transaction spanning both steps. The server, a CLI command
next to it and other replicas all write to one registry, so the lock is:

* a re-entrant lock per tracking store within the process (threads of one server);
* and, held by the outermost holder only, a lock the other processes see: a transaction
  advisory lock in PostgreSQL when ``storage.url`` is PostgreSQL (the database replicas
  share, whatever host they run on), else an exclusive ``flock`` on a file next to the
  tracking store (its SQLite file's folder, or the data directory).

A holder that never lets go (a process stuck mid-change) makes others wait at most
``timeout_s``, then fail with a clear 503 rather than hang.
"""

from __future__ import annotations

import fcntl
import threading
import time
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from genaiops.config import Settings
from genaiops.errors import StoreUnavailable

_LOCAL: dict[str, threading.RLock] = {}
_ENGINES: dict[str, Any] = {}
_GUARD = threading.Lock()
# Per thread: tracking store -> (how deep this thread holds its lock, what releases it).
_THREAD = threading.local()
_POLL_S = 0.02


def _local_lock(uri: str) -> threading.RLock:
    with _GUARD:
        return _LOCAL.setdefault(uri, threading.RLock())


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine

    with _GUARD:
        if url not in _ENGINES:
            _ENGINES[url] = create_engine(url, pool_pre_ping=True, pool_size=2)
        return _ENGINES[url]


def lock_file(settings: Settings) -> Path:
    """The file whose ``flock`` stands for the registry when no PostgreSQL is shared."""
    uri = settings.mlflow_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).with_suffix(".registry.lock")
    return settings.data_dir / "registry.lock"


def _busy(timeout_s: float) -> StoreUnavailable:
    return StoreUnavailable(
        f"the model registry is being changed by another process; nothing changed after "
        f"waiting {timeout_s:g} s, try again"
    )


@contextmanager
def _flock(path: Path, timeout_s: float) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str]
    with path.open("a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(timeout_s) from None
                time.sleep(_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _advisory(url: str, key: str, timeout_s: float) -> Any:
    from sqlalchemy import text

    with _engine(url).begin() as conn:
        conn.execute(
            text("SELECT set_config('lock_timeout', :ms, true)"),
            {"ms": f"{int(timeout_s * 1000)}ms"},
        )
        try:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        except Exception as exc:
            if getattr(getattr(exc, "orig", None), "sqlstate", None) == "55P03":
                raise _busy(timeout_s) from exc  # lock_not_available
            raise
        yield  # released when the transaction ends


class RegistryLock(AbstractContextManager[None]):
    """``with lock:`` holds the registry for one change. A thread already holding it (any
    ``RegistryLock`` of the same tracking store) goes on at once."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0):
        self.settings = settings
        self.timeout_s = timeout_s
        self.uri = settings.mlflow_uri()
        self._local = _local_lock(self.uri)

    def _shared(self) -> AbstractContextManager[Any]:
        url = self.settings.database_url()
        if url.startswith("postgresql"):
            return _advisory(url, f"genaiops:registry:{self.uri}", self.timeout_s)
        return _flock(lock_file(self.settings), self.timeout_s)

    def __enter__(self) -> None:
        if not self._local.acquire(timeout=self.timeout_s):
            raise _busy(self.timeout_s)
        held: dict[str, tuple[int, ExitStack]] = _THREAD.__dict__.setdefault("held", {})
        depth, stack = held.get(self.uri, (0, ExitStack()))
        if depth == 0:
            try:
                stack.enter_context(self._shared())
            except BaseException:
                self._local.release()
                raise
        held[self.uri] = (depth + 1, stack)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        held: dict[str, tuple[int, ExitStack]] = _THREAD.held
        depth, stack = held.pop(self.uri)
        try:
            if depth > 1:
                held[self.uri] = (depth - 1, stack)
            else:
                stack.close()
        finally:
            self._local.release()
