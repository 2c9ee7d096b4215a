"""Usage accounting queries: tokens and requests per key, tenant, model and day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from genaiops.errors import InvalidRequest
from genaiops.storage.db import Database
from genaiops.storage.tables import usage_daily

GROUPS = ("day", "tenant", "key_id", "model")


def utc_day(ts: float | None = None) -> str:
    moment = dt.datetime.now(dt.UTC) if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.strftime("%Y-%m-%d")


def period_bounds(period: str, now: dt.datetime | None = None) -> tuple[str, int]:
    """(first day of the current UTC period, seconds until the next period starts)."""
    now = now or dt.datetime.now(dt.UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(days=1)
    else:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m-%d"), max(1, int((end - now).total_seconds()))


def parse_day(text: str, param: str) -> str:
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError as exc:
        raise InvalidRequest(f"{param} must be a date like 2026-11-01", param=param) from exc


def tokens_used(
    db: Database, *, since_day: str, tenant: str, key_ids: Sequence[str] | None = None
) -> int:
    """Prompt + completion tokens since ``since_day`` for a tenant, or some of its keys (a
    key and those it was rotated from)."""
    stmt = select(
        func.coalesce(func.sum(usage_daily.c.prompt_tokens + usage_daily.c.completion_tokens), 0)
    ).where(usage_daily.c.day >= since_day, usage_daily.c.tenant == tenant)
    if key_ids is not None:
        stmt = stmt.where(usage_daily.c.key_id.in_(list(key_ids)))
    with db.connect() as conn:
        return int(conn.execute(stmt).scalar() or 0)


def query(
    db: Database,
    *,
    tenant: str | None = None,
    since: str | None = None,
    until: str | None = None,
    group_by: list[str] | None = None,
    key_id: str | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    group_by = group_by if group_by is not None else ["day", "tenant", "model"]
    group_by = list(dict.fromkeys(group_by))  # "day,day" is one column, once
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise InvalidRequest(f"group_by takes {list(GROUPS)}; got {unknown}", param="group_by")
    columns = [usage_daily.c[g] for g in group_by]
    sums = [
        func.sum(usage_daily.c.requests).label("requests"),
        func.sum(usage_daily.c.errors).label("errors"),
        func.sum(usage_daily.c.prompt_tokens).label("prompt_tokens"),
        func.sum(usage_daily.c.completion_tokens).label("completion_tokens"),
    ]
    stmt = select(*columns, *sums)
    if tenant is not None:
        stmt = stmt.where(usage_daily.c.tenant == tenant)
    if since is not None:
        stmt = stmt.where(usage_daily.c.day >= parse_day(since, "since"))
    if until is not None:
        stmt = stmt.where(usage_daily.c.day <= parse_day(until, "until"))
    if key_id is not None:
        stmt = stmt.where(usage_daily.c.key_id == key_id)
    if model is not None:
        stmt = stmt.where(usage_daily.c.model == model)
    if columns:
        stmt = stmt.group_by(*columns).order_by(*columns)
    with db.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for row in rows:
        item = dict(row._mapping)
        if item["requests"] is None:
            continue
        for name in ("requests", "errors", "prompt_tokens", "completion_tokens"):
            item[name] = int(item[name] or 0)
        item["total_tokens"] = item["prompt_tokens"] + item["completion_tokens"]
        out.append(item)
    return out
