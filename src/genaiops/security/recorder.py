"""Background writer for what every request leaves behind: audit records and usage
counters.

The request path only appends to an in-memory queue (a few microseconds); one thread
writes batches in a single transaction at most ``storage.flush_interval_s`` apart, with
usage rows summed per (day, tenant, key, model) first. Security events call ``flush`` and
so are durable before the API or CLI call that caused them returns. If the database is
unavailable the batch is kept and retried; nothing is dropped unless more than
``max_pending`` records pile up, which is logged as an error.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DataError, SQLAlchemyError

from genaiops.security import audit
from genaiops.security.audit import AuditEvent
from genaiops.storage.db import Database
from genaiops.storage.tables import usage_daily

log = logging.getLogger("genaiops.security")

_USAGE_COLUMNS = ("requests", "errors", "prompt_tokens", "completion_tokens")


@dataclass
class UsageDelta:
    day: str
    tenant: str
    key_id: str
    model: str
    requests: int = 1
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Barrier:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: Exception | None = None


class Recorder:
    def __init__(self, db: Database, flush_interval_s: float = 0.25, max_pending: int = 200_000):
        self.db = db
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self._queue: queue.SimpleQueue[AuditEvent | UsageDelta | _Barrier | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._events: list[AuditEvent] = []
        self._usage: dict[tuple[str, str, str, str], list[int]] = {}
        self.written = 0

    def start(self) -> None:
        if self._thread is None:
            self.db.migrate()
            self._thread = threading.Thread(target=self._run, name="genaiops-recorder", daemon=True)
            self._thread.start()

    # -- producers (any thread) ------------------------------------------------------------

    def audit(self, event: AuditEvent) -> None:
        self._queue.put(event)

    def usage(self, delta: UsageDelta) -> None:
        self._queue.put(delta)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything queued so far is written (or raise the write error)."""
        if self._thread is None:
            self._write()
            return
        barrier = _Barrier()
        self._queue.put(barrier)
        if not barrier.done.wait(timeout):
            raise TimeoutError("the audit log writer did not finish in time")
        if barrier.error is not None:
            raise barrier.error

    def audit_now(self, event: AuditEvent) -> None:
        self.audit(event)
        self.flush()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        try:
            self._write()
        except SQLAlchemyError as exc:
            log.error("audit records lost at shutdown: %s", exc)

    # -- the writer thread -----------------------------------------------------------------

    def _take(self, item: AuditEvent | UsageDelta) -> None:
        if isinstance(item, AuditEvent):
            self._events.append(item)
            return
        key = (item.day, item.tenant, item.key_id, item.model)
        totals = self._usage.setdefault(key, [0, 0, 0, 0])
        for i, name in enumerate(_USAGE_COLUMNS):
            totals[i] += getattr(item, name)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            barriers: list[_Barrier] = []
            try:
                # With a failed batch still pending, wake up to retry it.
                pending = bool(self._events or self._usage)
                item = self._queue.get(timeout=self.flush_interval_s if pending else None)
            except queue.Empty:
                item = _Barrier()
            deadline = time.monotonic() + self.flush_interval_s
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, _Barrier):
                    barriers.append(item)
                else:
                    self._take(item)
                if stopping or barriers:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            # Take whatever else is already waiting so one transaction covers it.
            while not stopping:
                try:
                    extra = self._queue.get_nowait()
                except queue.Empty:
                    break
                if extra is None:
                    stopping = True
                elif isinstance(extra, _Barrier):
                    barriers.append(extra)
                else:
                    self._take(extra)
            error = self._write_batch()
            for barrier in barriers:
                barrier.error = error
                barrier.done.set()

    def _write_batch(self) -> Exception | None:
        """``_write``, keeping the writer alive whatever fails; the error, if any."""
        try:
            self._write()
        except SQLAlchemyError as exc:
            if isinstance(exc, DataError):  # the values, not the database: never retried
                self._drop(exc)
            else:
                log.error("audit/usage write failed, will retry: %s", exc)
                self._trim()
                time.sleep(min(1.0, self.flush_interval_s))
            return exc
        except Exception as exc:  # a record the driver cannot take must not end the writer
            self._drop(exc)
            return exc
        return None

    def _drop(self, exc: Exception) -> None:
        """Give up a batch the database refuses for its values (retrying would refuse it
        forever and hold back every record after it); the writer goes on with the next."""
        log.error(
            "dropping %d audit records and %d usage rows the database refuses: %s",
            len(self._events), len(self._usage), exc,
        )  # fmt: skip
        self._events, self._usage = [], {}

    def _trim(self) -> None:
        excess = len(self._events) - self.max_pending
        if excess > 0:
            log.error("dropping %d audit records: the database has been unavailable", excess)
            del self._events[:excess]

    def _write(self) -> None:
        if not self._events and not self._usage:
            return
        events, usage = self._events, self._usage
        with self.db.begin() as conn:
            if usage:
                rows = [
                    {"day": k[0], "tenant": k[1], "key_id": k[2], "model": k[3]}
                    | dict(zip(_USAGE_COLUMNS, v, strict=True))
                    for k, v in usage.items()
                ]
                stmt = self.db.upsert(usage_daily)
                excluded: Any = stmt.excluded
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["day", "tenant", "key_id", "model"],
                        set_={c: usage_daily.c[c] + excluded[c] for c in _USAGE_COLUMNS},
                    ),
                    rows,
                )
            if events:
                audit.append(conn, events)
        self.written += len(events)
        self._events, self._usage = [], {}
