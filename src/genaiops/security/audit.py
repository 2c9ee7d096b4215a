"""The hash-chained audit log.

Each record stores the hash of the record before it and its own hash over its sequence
number, timestamp, fields and that previous hash. Editing a record changes its hash;
deleting or reordering records breaks the link or the sequence; deleting the newest
records leaves the ``audit_head`` row pointing past the end. ``verify`` walks the chain and
names the first record that does not fit.

Appends take the head row's lock first (an UPDATE), so processes sharing one database
(SQLite file or PostgreSQL) extend one chain instead of forking it. Secrets never reach
the log: callers pass key ids, never keys, and ``detail`` is checked for key-shaped strings.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, insert, inspect, select, update

from genaiops.security.keys import now_us
from genaiops.storage.db import GENESIS_HASH, Database
from genaiops.storage.tables import api_keys, audit_head, audit_log

_SECRET_RE = re.compile(r"gaiops_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")
FIELDS = (
    "seq",
    "ts_us",
    "event",
    "tenant",
    "actor",
    "request_id",
    "model",
    "status",
    "latency_us",
    "prompt_tokens",
    "completion_tokens",
    "detail",
)
# The event written when a deleted head row had to be restored (see Database.migrate).
HEAD_RESTORED = "audit.head_restored"
# Written when the log and its head were both gone while API keys existed: a wiped log.
LOG_RESTARTED = "audit.log_restarted"
# Written by ``prune``: the records up to ``through_seq`` were deleted on purpose (a
# retention period), and the chain goes on from ``through_hash``.
PRUNED = "audit.pruned"
# What an exported record holds: its fields, then the chain links.
EXPORT_FIELDS = (*FIELDS, "prev_hash", "hash")


@dataclass
class AuditEvent:
    """What a caller appends; the log adds sequence number and hashes."""

    event: str
    ts_us: int
    tenant: str | None = None
    actor: str | None = None
    request_id: str | None = None
    model: str | None = None
    status: int | None = None
    latency_us: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def canonical_detail(detail: dict[str, Any]) -> str:
    text = json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _SECRET_RE.sub("gaiops_[redacted]", text)


def record_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = json.dumps([fields[name] for name in FIELDS], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(conn: Connection, events: Sequence[AuditEvent]) -> int:
    """Append events in order inside the caller's transaction; returns the last seq."""
    # Lock the head row before reading it: concurrent writers queue here.
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq))
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    seq, prev = int(head.seq), str(head.hash)
    rows = []
    for event in events:
        seq += 1
        fields = asdict(event)
        fields["seq"] = seq
        fields["detail"] = canonical_detail(event.detail)
        digest = record_hash(prev, fields)
        rows.append(fields | {"prev_hash": prev, "hash": digest})
        prev = digest
    if rows:
        conn.execute(insert(audit_log), rows)
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=prev))
    return seq


@dataclass
class Verification:
    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str | None = None
    # The newest record's hash: keep it (or any record's, from an export) somewhere the
    # database's writers cannot reach, and pass it back as an anchor later.
    head_hash: str | None = None
    # Records up to this one were pruned (a retention period); the chain starts after it.
    pruned_through: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(
    db: Database, batch: int = 5000, anchors: Sequence[tuple[int, str]] = ()
) -> Verification:
    """Walk the whole chain in sequence order; stop at the first inconsistency.

    ``anchors`` are (sequence number, hash) pairs kept outside the database (a SIEM's
    copy of an export, the head hash of an earlier verification): each record named must
    still hold that hash. The chain alone cannot tell a rewritten log whose every later
    hash was recomputed from the original; an anchor can.

    Read-only: the database is not migrated or repaired first (a missing head row is
    reported, not restored), so verifying a forensic copy leaves it as it was."""
    tables = inspect(db.engine)
    missing = next((t.name for t in (audit_log, audit_head) if not tables.has_table(t.name)), None)
    if missing is not None:
        keys = 0
        if tables.has_table(api_keys.name):
            with db.engine.connect() as conn:
                keys = conn.execute(select(func.count()).select_from(api_keys)).scalar() or 0
        if anchors or keys or missing == audit_head.name:
            return Verification(
                False, 0, anchors[0][0] if anchors else 1,
                f"the table {missing} does not exist"
                + (f" although {keys} API key(s) exist" if keys else "")
                + ": the audit log was removed",
            )  # fmt: skip
        return Verification(True, 0)  # a database that was never used
    with db.snapshot() as conn:
        result = _verify(conn, batch)
        if not result.ok:
            return result
        for seq, expected in anchors:
            if result.pruned_through is not None and seq <= result.pruned_through:
                continue  # deleted on purpose with the records before the retention limit
            stored = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == seq)).scalar()
            if stored != expected.lower():
                found = "is missing" if stored is None else "does not hold the anchored hash"
                return Verification(
                    False, result.records, seq, f"record {seq} {found}: the log was rewritten"
                )
        return result


# Records the log writes about its own tampering, and how verify reports them.
_MARKERS: dict[str, Callable[[int], str]] = {
    HEAD_RESTORED: lambda seq: (
        f"the audit head was deleted (record {seq} marks where it was "
        "restored from the newest record)"
    ),
    LOG_RESTARTED: lambda seq: (
        "the audit log was wiped with its head while API keys existed "
        f"(record {seq} marks where it started over)"
    ),
}


def _pruned_start(conn: Connection) -> tuple[int, str] | None:
    """Where the chain starts when its oldest records were pruned: the (seq, prev_hash) of
    the first record left, if a prune record (itself in the chain, so checked by the walk)
    names exactly that point; None otherwise (the walk then reports the gap)."""
    first = conn.execute(
        select(audit_log.c.seq, audit_log.c.prev_hash).order_by(audit_log.c.seq).limit(1)
    ).first()
    if first is None or first.seq == 1:
        return None
    markers = conn.execute(
        select(audit_log.c.detail).where(audit_log.c.event == PRUNED).order_by(audit_log.c.seq)
    ).scalars()
    for text in markers:
        detail = json.loads(text)
        if detail.get("through_seq") == first.seq - 1 and detail.get("through_hash") == (
            first.prev_hash
        ):
            return int(first.seq), str(first.prev_hash)
    return None


def _verify(conn: Connection, batch: int) -> Verification:
    expected_prev, expected_seq, count = GENESIS_HASH, 1, 0
    start = _pruned_start(conn)
    if start is not None:
        expected_seq, expected_prev = start
    # A restored head leaves an intact chain; it is reported once nothing worse is found.
    restored: Verification | None = None
    last_seen = 0
    while True:
        rows = conn.execute(
            select(audit_log)
            .where(audit_log.c.seq > last_seen)
            .order_by(audit_log.c.seq)
            .limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            fields = {name: getattr(row, name) for name in FIELDS}
            if row.seq != expected_seq:
                reason = (
                    f"record {expected_seq} is missing (next record is {row.seq})"
                    if row.seq > expected_seq
                    else f"record {row.seq} is out of order"
                )
                return Verification(False, count, expected_seq, reason)
            if row.prev_hash != expected_prev:
                return Verification(
                    False, count, row.seq, f"record {row.seq} does not link to its predecessor"
                )
            if record_hash(row.prev_hash, fields) != row.hash:
                return Verification(
                    False, count, row.seq, f"record {row.seq} was modified after it was written"
                )
            if row.event in _MARKERS and restored is None:
                restored = Verification(False, count, row.seq, _MARKERS[row.event](row.seq))
            expected_prev, expected_seq = row.hash, row.seq + 1
            count += 1
            last_seen = row.seq
    problem = _head_problem(conn, count, expected_seq, expected_prev)
    if problem is not None:
        return problem
    pruned = start[0] - 1 if start is not None else None
    if restored is not None:
        restored.pruned_through = pruned
        return restored
    return Verification(
        True, count, head_hash=expected_prev if count else None, pruned_through=pruned
    )


def _head_problem(
    conn: Connection, count: int, expected_seq: int, expected_prev: str
) -> Verification | None:
    """What is wrong with the head row (or the table of keys) once the chain walked
    cleanly up to ``expected_seq - 1``; None when nothing is."""
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
    newest = expected_seq - 1
    if head is None and newest > 0:
        return Verification(
            False, count, newest, "the audit head row was deleted (the records are intact)"
        )
    if newest == 0:
        # Every key ever created wrote a record: keys and no records is a wiped log.
        keys = conn.execute(select(func.count()).select_from(api_keys)).scalar() or 0
        if keys:
            return Verification(
                False,
                0,
                1,
                f"the audit log is empty although {keys} API key(s) exist, each created "
                "with a record: its records were deleted",
            )
    if head is not None and head.seq > newest:
        return Verification(
            False,
            count,
            expected_seq,
            f"record {expected_seq} and later (up to {head.seq}) are missing: "
            "the newest records were deleted",
        )
    if head is not None and head.seq < newest:
        return Verification(
            False,
            count,
            head.seq + 1,
            f"record {head.seq + 1} and later (up to {newest}) were not written through "
            f"the log: the head still points at record {head.seq}",
        )
    if head is not None and newest > 0 and head.hash != expected_prev:
        # The chain walk cannot catch an edit of the newest record whose hash was
        # recomputed (no successor links to it); the head still holds its original hash.
        return Verification(
            False, count, newest, f"record {newest} was modified after it was written"
        )
    return None


def prune(db: Database, before_us: int, actor: str | None = None) -> dict[str, Any]:
    """Delete the records older than ``before_us`` (a retention period: LGPD and similar
    laws ask that personal data not be kept longer than needed), in one transaction with
    an ``audit.pruned`` record naming the last one deleted and its hash, so ``verify``
    checks the chain from there. The newest record is never deleted: the prune record
    links to it."""
    now = now_us()
    with db.begin() as conn:
        # The head's lock first: appends from the server wait until the prune is done.
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq))
        last = conn.execute(
            select(audit_log.c.seq, audit_log.c.hash)
            .where(audit_log.c.ts_us < before_us)
            .order_by(audit_log.c.seq.desc())
            .limit(1)
        ).first()
        if last is None:
            return {"pruned": 0, "through_seq": None}
        count = (
            conn.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.seq <= last.seq)
            ).scalar()
            or 0
        )
        detail = {"through_seq": int(last.seq), "through_hash": str(last.hash),
                  "before_us": before_us, "records": int(count)}  # fmt: skip
        append(conn, [AuditEvent(PRUNED, now, actor=actor, detail=detail)])
        conn.execute(delete(audit_log).where(audit_log.c.seq <= last.seq))
    return {"pruned": int(count), "through_seq": int(last.seq), "through_hash": str(last.hash)}


def query(
    db: Database,
    *,
    tenant: str | None = None,
    since_us: int | None = None,
    until_us: int | None = None,
    event: str | None = None,
    after_seq: int = 0,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Records in sequence order, as dicts (detail parsed), for the admin API and export."""
    stmt = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
    if tenant is not None:
        stmt = stmt.where(audit_log.c.tenant == tenant)
    if since_us is not None:
        stmt = stmt.where(audit_log.c.ts_us >= since_us)
    if until_us is not None:
        stmt = stmt.where(audit_log.c.ts_us < until_us)
    if event is not None:
        stmt = stmt.where(audit_log.c.event == event)
    if limit is not None:
        stmt = stmt.limit(limit)
    with db.connect() as conn:
        for row in conn.execute(stmt):
            yield _record(row)


def latest(db: Database, event: str) -> dict[str, Any] | None:
    """The newest record of one event type, or None."""
    stmt = (
        select(audit_log)
        .where(audit_log.c.event == event)
        .order_by(audit_log.c.seq.desc())
        .limit(1)
    )
    with db.connect() as conn:
        row = conn.execute(stmt).first()
    return _record(row) if row is not None else None


def _record(row: Any) -> dict[str, Any]:
    """A stored row as a dict, with ``detail`` parsed."""
    record = {name: getattr(row, name) for name in EXPORT_FIELDS}
    record["detail"] = json.loads(row.detail)
    return record


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as ``audit verify`` prints a head, or an exported record's seq and
    hash) -> (seq, hash)."""
    from genaiops.errors import InvalidRequest

    seq, _, digest = text.strip().partition(":")
    if (
        not re.fullmatch(r"[0-9]{1,18}", seq)
        or int(seq) < 1
        or not re.fullmatch(r"[0-9a-fA-F]{64}", digest)
    ):
        raise InvalidRequest(
            f"an anchor is SEQ:HASH (a record's sequence number and its 64-hex-digit hash); "
            f"got {text[:80]!r}",
            param="anchor",
        )
    return int(seq), digest.lower()


def parse_instant(text: str, param: str) -> int:
    """An ISO date or date-time (UTC unless it says otherwise), or epoch seconds -> µs."""
    import datetime as dt

    from genaiops.errors import InvalidRequest

    value = text.strip()
    invalid = InvalidRequest(
        f"{param} must be a date, an ISO date-time or epoch seconds (before the year "
        f"10000); got {text[:64]!r}",
        param=param,
    )
    try:
        if value.replace(".", "", 1).isdigit():
            seconds = float(value)
        else:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            seconds = moment.timestamp()
    except (ValueError, OverflowError) as exc:
        raise invalid from exc
    if not 0 <= seconds < _YEAR_10000:
        raise invalid
    return int(seconds * 1_000_000)


# 10000-01-01T00:00:00Z in epoch seconds: the end of what ISO dates can name.
_YEAR_10000 = 253402300800
