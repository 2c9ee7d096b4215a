"""Database: one SQLAlchemy engine per process, built from Settings.

SQLite (the default) runs in WAL mode with a busy timeout, so several processes (the
server, the CLI, a second replica in tests) can share one file; PostgreSQL is used by
giving ``storage.url``. The schema is created on first use and its version recorded; a
newer schema than this code knows is refused instead of being written to.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from genaiops.errors import ConfigError
from genaiops.storage.tables import (
    SCHEMA_VERSION,
    api_keys,
    audit_head,
    audit_log,
    metadata,
    schema_info,
)

GENESIS_HASH = "0" * 64
# Tries of the schema check when replicas create the tables at the same moment.
_MIGRATE_ATTEMPTS = 8


def private_file(path: Path) -> None:
    """Make sure ``path`` exists readable and writable by its owner only, creating its
    folder (0700) if missing: databases hold key hashes, the audit log, tenants' documents.
    SQLite gives the WAL and shared-memory files the database's own mode. A file that
    exists keeps its mode (an operator may have chosen another)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_read_pragmas(dbapi_connection: sqlite3.Connection, _: Any) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=10000")


def _seed_audit_head(conn: Connection) -> int | None:
    """Create the audit chain's head row; returns the restored seq if records exist (0
    when none do although API keys exist).

    A head row missing beside existing records means it was deleted: restarting it at 0
    would make every later append collide with record 1, so it continues from the newest
    record, and the caller records that the head had to be restored.
    """
    newest = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    if newest is None:
        conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS_HASH))
        # Every key was created with a record: keys without records or head is a wiped
        # log starting over, which the caller records as such (0).
        keys = conn.execute(select(func.count()).select_from(api_keys)).scalar()
        return 0 if keys else None
    conn.execute(insert(audit_head).values(id=1, seq=newest.seq, hash=newest.hash))
    return int(newest.seq)


class Database:
    def __init__(self, url: str, read_only: bool = False):
        """``read_only``: an SQLite file is opened as it is, never created nor switched to
        WAL (a forensic copy, a read-only mount); a missing one is a ConfigError."""
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
            if read_only and path and path != ":memory:":
                if not Path(path).is_file():
                    raise ConfigError(f"no database at {path}")
                url = f"sqlite:///file:{path}?mode=ro&uri=true"
            elif path and path != ":memory:":
                private_file(Path(path))
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise ConfigError(f"storage.url: cannot use {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(
                self.engine, "connect", _sqlite_read_pragmas if read_only else _sqlite_pragmas
            )
        self._migrated = False
        # Set by migrate when the audit head row was missing although records exist: the
        # sequence number of the newest record it was restored from.
        self.head_restored: int | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Create missing tables and check the recorded schema version.

        Replicas started together on an empty database race here: one creates a table or
        the version row the other is creating (PostgreSQL: a unique violation; SQLite:
        "already exists", or "database is locked" when both upgrade a read lock). Every
        step checks first, so trying again after a moment finds the other's work done."""
        if self._migrated:
            return
        for attempt in range(_MIGRATE_ATTEMPTS):
            try:
                self._migrate()
                break
            except SQLAlchemyError as exc:
                if attempt + 1 == _MIGRATE_ATTEMPTS:
                    raise ConfigError(f"cannot open the database {self.safe_url}: {exc}") from exc
                time.sleep(random.uniform(0.05, 0.25) * (attempt + 1))
        self._migrated = True

    def _migrate(self) -> None:
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            version = conn.execute(select(schema_info.c.version)).scalar()
            if version is None:
                conn.execute(insert(schema_info).values(id=1, version=SCHEMA_VERSION))
            elif version > SCHEMA_VERSION:
                raise ConfigError(
                    f"the database schema is version {version}, newer than this genaiops "
                    f"understands ({SCHEMA_VERSION}); upgrade genaiops"
                )
            if conn.execute(select(audit_head.c.id)).first() is None:
                self.head_restored = _seed_audit_head(conn)

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        self.migrate()
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        self.migrate()
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only connection whose queries all see one committed state, while writers
        (other threads, other replicas) go on committing: a consistency check that reads
        in several steps must not mistake a write landing between them for damage. SQLite
        holds one read transaction (its driver begins none for SELECTs on its own);
        PostgreSQL runs at REPEATABLE READ. Never migrates: a forensic copy stays as is."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN")
            else:
                conn.execution_options(isolation_level="REPEATABLE READ")
            try:
                yield conn
            finally:
                conn.rollback()

    def upsert(self, table: Any) -> Any:
        """A dialect-specific INSERT that supports ``on_conflict_do_update``."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def close(self) -> None:
        self.engine.dispose()
