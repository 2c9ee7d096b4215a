"""Connections to the pgvector store's database: a small pool of autocommit connections
(transactions are explicit), each with the store's session settings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from genaiops.errors import ConfigError, StoreUnavailable

if TYPE_CHECKING:
    import psycopg

# Connections kept open between calls; more are opened under load and closed after.
_IDLE_CONNECTIONS = 8


def conninfo(url: str) -> str:
    """A libpq URI from a SQLAlchemy-style URL (``postgresql+psycopg://...``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ConfigError(f"rag.url must be a PostgreSQL URL (postgresql://...), got {scheme!r}")
    return "postgresql://" + rest


def vector_text(vector: Any) -> str:
    """pgvector's text form; ``%.9g`` round-trips float32 exactly."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Pool:
    def __init__(self, url: str, *, ef_search: int):
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "rag.store = 'pgvector' needs the PostgreSQL driver: "
                "pip install 'genaiops[postgres]'"
            ) from exc
        self.conninfo = conninfo(url)
        self.ef_search = ef_search
        self._idle: list[psycopg.Connection[Any]] = []
        self._guard = threading.Lock()
        # Until a first connection succeeds, failing to connect is a configuration error
        # (start-up stops); afterwards it is an outage (503, try again).
        self._reached = False

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            conn = psycopg.connect(
                self.conninfo, autocommit=True, row_factory=dict_row, connect_timeout=10
            )
        except psycopg.OperationalError as exc:
            message = f"cannot connect to the pgvector store: {_first_line(exc)}"
            if self._reached:
                raise StoreUnavailable(message) from exc
            raise ConfigError(message) from exc
        self._reached = True
        conn.execute(f"SET hnsw.ef_search = {int(self.ef_search)}")
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        import psycopg

        with self._guard:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self._connect()
        try:
            yield conn
        except psycopg.OperationalError as exc:
            # The server went away (restart, failover, network): the idle connections are
            # most likely dead too, so they go, and the next call connects afresh.
            conn.close()
            self.close()
            raise StoreUnavailable(
                f"the pgvector store's database is unreachable: {_first_line(exc)}"
            ) from exc
        finally:
            reusable = not conn.closed and not conn.broken
            with self._guard:
                if reusable and len(self._idle) < _IDLE_CONNECTIONS:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    def close(self) -> None:
        with self._guard:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
