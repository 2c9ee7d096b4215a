"""API keys and tenants in the metadata store.

A key reads ``gaiops_<id>_<secret>``: the 12-hex-digit id is public and indexes the row;
only the SHA-256 of the whole key is stored (the secret has 256 random bits, so a slow
password hash would add latency and no safety). Checking a key is one primary-key lookup
and one ``hmac.compare_digest``; unknown ids and malformed keys run the same comparison
against a dummy hash, so response time does not tell a caller which part was wrong.

Looked-up keys are cached for ``auth.key_cache_ttl_s``; changes made through this process
invalidate its cache at once, other processes notice within the TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import insert, select, update

from genaiops.config import Role
from genaiops.errors import InvalidRequest, NotFound
from genaiops.security.principal import ROLES, SYSTEM_TENANT, Limits
from genaiops.storage.db import Database
from genaiops.storage.tables import api_keys, schema_info, tenants

KEY_PREFIX = "gaiops_"
_KEY_RE = re.compile(r"gaiops_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_DURATION_RE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DUMMY_HASH = hashlib.sha256(b"genaiops-no-such-key").hexdigest()
PERIODS = ("day", "month")
_CACHE_MAX = 10_000


def now_us() -> int:
    return time.time_ns() // 1000


def _lineage(conn: Any, record: KeyRecord) -> tuple[str, ...]:
    """The chain of rotations that led to ``record``, oldest key first."""
    chain = [record.id]
    previous = record.rotated_from
    while previous is not None and previous not in chain and len(chain) < 10_000:
        chain.append(previous)
        previous = conn.execute(
            select(api_keys.c.rotated_from).where(api_keys.c.id == previous)
        ).scalar()
    return tuple(reversed(chain))


# Past this an expiry is a typo, and its timestamp would not fit the database's integers.
_MAX_DURATION_S = 100 * 366 * 86400


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def parse_duration(text: str) -> int:
    """'30d' -> seconds. Units: s, m, h, d, w."""
    match = _DURATION_RE.fullmatch(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise InvalidRequest(
            f"invalid duration {text!r}; use a number and a unit, e.g. 90m, 12h, 30d",
            param="expires",
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > _MAX_DURATION_S:
        raise InvalidRequest(
            f"duration {text!r} is longer than 100 years; leave it out for a key that "
            "never expires",
            param="expires",
        )
    return seconds


def remember(
    cache: OrderedDict[Any, tuple[float, Any]], key: Any, value: Any, limit: int = _CACHE_MAX
) -> None:
    """Put ``value`` in a bounded read-through cache, stamped now (callers compare the stamp
    with their TTL); the least recently stored entries go first past ``limit``. The caller
    holds the cache's lock."""
    cache[key] = (time.monotonic(), value)
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def check_tenant(name: str) -> str:
    if not _TENANT_RE.fullmatch(name):
        raise InvalidRequest(
            f"invalid tenant name {name!r}: use 1-64 lowercase letters, digits, '-' or '_'",
            param="tenant",
        )
    return name


def _check_limits(rpm: int | None, tpm: int | None, budget: int | None, period: str) -> None:
    for label, value in (("rpm", rpm), ("tpm", tpm), ("budget_tokens", budget)):
        if value is not None and not 0 < value <= 10**15:
            raise InvalidRequest(
                f"{label} must be a positive integer of at most 10**15", param=label
            )
    if period not in PERIODS:
        raise InvalidRequest(f"budget_period must be one of {PERIODS}", param="budget_period")


class KeysExist(Exception):
    """``create(only_first=True)`` found a key already."""


class AlreadyRevoked(Exception):
    """``create(rotated_from=...)``: the key to replace was revoked meanwhile."""


@dataclass(frozen=True)
class KeyRecord:
    id: str
    tenant: str
    name: str
    role: Role
    secret_hash: str
    limits: Limits
    models: frozenset[str] | None
    created_us: int
    expires_us: int | None
    revoked_us: int | None
    created_by: str | None
    rotated_from: str | None
    # The ids of the keys this one was rotated from, oldest first, then its own: rate
    # limits and budgets are counted for the whole line (see ``load``).
    lineage: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Any) -> KeyRecord:
        models = json.loads(row.models) if row.models else None
        return cls(
            id=row.id,
            tenant=row.tenant,
            name=row.name,
            role=row.role,
            secret_hash=row.secret_hash,
            limits=Limits(row.rpm, row.tpm, row.budget_tokens, row.budget_period),
            models=frozenset(models) if models is not None else None,
            created_us=row.created_us,
            expires_us=row.expires_us,
            revoked_us=row.revoked_us,
            created_by=row.created_by,
            rotated_from=row.rotated_from,
        )

    def status(self, at_us: int | None = None) -> str:
        at_us = now_us() if at_us is None else at_us
        if self.revoked_us is not None:
            return "revoked"
        if self.expires_us is not None and self.expires_us <= at_us:
            return "expired"
        return "active"

    def public(self) -> dict[str, Any]:
        """Everything about the key except its hash."""
        return {
            "id": self.id,
            "object": "api_key",
            "tenant": self.tenant,
            "name": self.name,
            "role": self.role,
            "status": self.status(),
            "rpm": self.limits.rpm,
            "tpm": self.limits.tpm,
            "budget_tokens": self.limits.budget_tokens,
            "budget_period": self.limits.budget_period,
            "models": sorted(self.models) if self.models is not None else None,
            "created_at": self.created_us // 1_000_000,
            "expires_at": self.expires_us // 1_000_000 if self.expires_us else None,
            "revoked_at": self.revoked_us // 1_000_000 if self.revoked_us else None,
            "created_by": self.created_by,
            "rotated_from": self.rotated_from,
            "redacted_key": f"{KEY_PREFIX}{self.id}_…",
        }


@dataclass(frozen=True)
class NewKey:
    record: KeyRecord
    secret: str  # shown once, never stored


@dataclass(frozen=True)
class TenantRecord:
    name: str
    limits: Limits

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "object": "tenant",
            "rpm": self.limits.rpm,
            "tpm": self.limits.tpm,
            "budget_tokens": self.limits.budget_tokens,
            "budget_period": self.limits.budget_period,
        }


class KeyStore:
    def __init__(self, db: Database, cache_ttl_s: float = 5.0):
        self.db = db
        self.cache_ttl_s = cache_ttl_s
        self._cache: OrderedDict[str, tuple[float, KeyRecord | None]] = OrderedDict()
        self._tenant_cache: OrderedDict[str, tuple[float, TenantRecord | None]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by every invalidation: a read that began before a change (a revocation,
        # new tenant limits) must not put what it read back into the cache after it.
        self._epoch = 0

    # -- verification (request path) -------------------------------------------------------

    @staticmethod
    def key_id_of(presented: str) -> str | None:
        match = _KEY_RE.fullmatch(presented)
        return match.group(1) if match else None

    def cached(self, key_id: str) -> tuple[bool, KeyRecord | None]:
        """(hit, record) from the cache without touching the database."""
        with self._lock:
            entry = self._cache.get(key_id)
        if entry is None or time.monotonic() - entry[0] > self.cache_ttl_s:
            return False, None
        return True, entry[1]

    def load(self, key_id: str) -> KeyRecord | None:
        epoch = self._epoch
        with self.db.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            record = KeyRecord.from_row(row) if row is not None else None
            if record is not None and record.rotated_from is not None:
                record = replace(record, lineage=_lineage(conn, record))
        with self._lock:
            if epoch == self._epoch:
                remember(self._cache, key_id, record)
        return record

    @staticmethod
    def matches(record: KeyRecord | None, presented: str) -> bool:
        """Constant-time check of a presented key against a record (or a dummy hash)."""
        expected = record.secret_hash if record is not None else _DUMMY_HASH
        ok = hmac.compare_digest(expected.encode(), hash_key(presented).encode())
        return ok and record is not None

    def invalidate(self, key_id: str | None = None) -> None:
        with self._lock:
            self._epoch += 1
            if key_id is None:
                self._cache.clear()
                self._tenant_cache.clear()
            else:
                self._cache.pop(key_id, None)

    # -- management ------------------------------------------------------------------------

    def create(
        self,
        *,
        tenant: str,
        role: str,
        name: str = "",
        limits: Limits | None = None,
        models: list[str] | None = None,
        expires_in_s: int | None = None,
        created_by: str | None = None,
        rotated_from: str | None = None,
        only_first: bool = False,
    ) -> NewKey:
        """A new key. ``only_first``: unless the installation has one already (raises
        ``KeysExist``; see ``create_first``)."""
        check_tenant(tenant)
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {list(ROLES)}", param="role")
        limits = limits or Limits()
        _check_limits(limits.rpm, limits.tpm, limits.budget_tokens, limits.budget_period)
        if models is not None and not all(isinstance(m, str) and m for m in models):
            raise InvalidRequest("models must be a list of model names", param="models")
        if len(name) > 128:
            raise InvalidRequest("name must be at most 128 characters", param="name")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        created = now_us()
        values = {
            "id": key_id,
            "tenant": tenant,
            "name": name,
            "role": role,
            "secret_hash": hash_key(key),
            "rpm": limits.rpm,
            "tpm": limits.tpm,
            "budget_tokens": limits.budget_tokens,
            "budget_period": limits.budget_period,
            "models": json.dumps(sorted(set(models))) if models is not None else None,
            "created_us": created,
            "expires_us": created + expires_in_s * 1_000_000 if expires_in_s else None,
            "revoked_us": None,
            "created_by": created_by,
            "rotated_from": rotated_from,
        }
        with self.db.begin() as conn:
            if only_first:
                # A write first: it waits for any other writer and then holds the lock, so
                # the look below sees every key committed before it.
                conn.execute(
                    update(schema_info)
                    .where(schema_info.c.id == 1)
                    .values(version=schema_info.c.version)
                )
                if conn.execute(select(api_keys.c.id).limit(1)).first() is not None:
                    raise KeysExist
            if rotated_from is not None:
                # The key replaced is revoked in the same transaction, if it still is
                # active: two rotations at once leave one successor, not two live keys.
                revoked = conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == rotated_from, api_keys.c.revoked_us.is_(None))
                    .values(revoked_us=created)
                )
                if revoked.rowcount != 1:
                    raise AlreadyRevoked
            self._ensure_tenant(conn, tenant)
            conn.execute(insert(api_keys).values(**values))
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()
        return NewKey(KeyRecord.from_row(row), key)

    def create_first(self, *, tenant: str, role: str, name: str, created_by: str) -> NewKey | None:
        """A key, unless the installation has one already: the check and the insert are
        one transaction that takes the database's write lock before it looks (a row lock
        on PostgreSQL), so replicas starting together on an empty database create one key
        between them, not one each."""
        try:
            return self.create(
                tenant=tenant, role=role, name=name, created_by=created_by, only_first=True
            )
        except KeysExist:
            return None

    def get(self, key_id: str, tenant: str | None = None) -> KeyRecord:
        """A key by id, within ``tenant`` when given (another tenant's key is 'not found')."""
        query = select(api_keys).where(api_keys.c.id == key_id)
        if tenant is not None:
            query = query.where(api_keys.c.tenant == tenant)
        with self.db.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"No API key with id '{key_id}'.", param="key_id", code="key_not_found")
        return KeyRecord.from_row(row)

    def all(self, tenant: str | None = None, include_revoked: bool = False) -> list[KeyRecord]:
        query = select(api_keys).order_by(api_keys.c.created_us, api_keys.c.id)
        if tenant is not None:
            query = query.where(api_keys.c.tenant == tenant)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_us.is_(None))
        with self.db.connect() as conn:
            return [KeyRecord.from_row(r) for r in conn.execute(query)]

    def has_keys(self) -> bool:
        with self.db.connect() as conn:
            return conn.execute(select(api_keys.c.id).limit(1)).first() is not None

    def revoke(self, key_id: str, tenant: str | None = None) -> KeyRecord:
        record = self.get(key_id, tenant)
        if record.revoked_us is None:
            with self.db.begin() as conn:
                conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == key_id, api_keys.c.revoked_us.is_(None))
                    .values(revoked_us=now_us())
                )
        self.invalidate(key_id)
        return self.get(key_id, tenant)

    def rotate(
        self, key_id: str, tenant: str | None = None, created_by: str | None = None
    ) -> tuple[NewKey, KeyRecord]:
        """A new key with the same tenant, role, limits and models; the old one is revoked."""
        old = self.get(key_id, tenant)
        if old.status() != "active":
            raise InvalidRequest(f"API key '{key_id}' is {old.status()} and cannot be rotated")
        remaining = None
        if old.expires_us is not None:
            remaining = max(1, (old.expires_us - now_us()) // 1_000_000)
        try:
            new = self.create(
                tenant=old.tenant,
                role=old.role,
                name=old.name,
                limits=old.limits,
                models=sorted(old.models) if old.models is not None else None,
                expires_in_s=remaining,
                created_by=created_by,
                rotated_from=old.id,
            )
        except AlreadyRevoked:
            raise InvalidRequest(f"API key '{key_id}' is revoked and cannot be rotated") from None
        finally:
            self.invalidate(old.id)
        return new, self.get(old.id, tenant)

    # -- tenants ---------------------------------------------------------------------------

    def _ensure_tenant(self, conn: Any, tenant: str) -> None:
        """The tenant's row, created if missing; two requests creating it at once (keys of
        a new tenant made in parallel) both succeed."""
        stamp = now_us()
        conn.execute(
            self.db.upsert(tenants)
            .values(name=tenant, budget_period="month", created_us=stamp, updated_us=stamp)
            .on_conflict_do_nothing(index_elements=["name"])
        )

    def cached_tenant(self, name: str) -> tuple[bool, TenantRecord | None]:
        """(hit, record) from the cache without touching the database."""
        entry = self._tenant_cache.get(name)
        if entry is not None and time.monotonic() - entry[0] <= self.cache_ttl_s:
            return True, entry[1]
        return False, None

    def tenant(self, name: str) -> TenantRecord | None:
        """A tenant's limits, cached like keys (read on every request)."""
        hit, cached = self.cached_tenant(name)
        if hit:
            return cached
        epoch = self._epoch
        with self.db.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.name == name)).first()
        record = (
            TenantRecord(row.name, Limits(row.rpm, row.tpm, row.budget_tokens, row.budget_period))
            if row is not None
            else None
        )
        # Bounded like the key cache: with JWTs every tenant claim seen is a name here.
        with self._lock:
            if epoch == self._epoch:
                remember(self._tenant_cache, name, record)
        return record

    def tenants(self, name: str | None = None) -> list[TenantRecord]:
        query = select(tenants).order_by(tenants.c.name)
        if name is not None:
            query = query.where(tenants.c.name == name)
        with self.db.connect() as conn:
            return [
                TenantRecord(r.name, Limits(r.rpm, r.tpm, r.budget_tokens, r.budget_period))
                for r in conn.execute(query)
            ]

    def set_tenant(self, name: str, limits: Limits) -> TenantRecord:
        check_tenant(name)
        _check_limits(limits.rpm, limits.tpm, limits.budget_tokens, limits.budget_period)
        with self.db.begin() as conn:
            self._ensure_tenant(conn, name)
            conn.execute(
                update(tenants)
                .where(tenants.c.name == name)
                .values(
                    rpm=limits.rpm,
                    tpm=limits.tpm,
                    budget_tokens=limits.budget_tokens,
                    budget_period=limits.budget_period,
                    updated_us=now_us(),
                )
            )
        with self._lock:
            self._epoch += 1
            self._tenant_cache.pop(name, None)
        record = self.tenant(name)
        assert record is not None
        return record


__all__ = ["SYSTEM_TENANT", "KeyRecord", "KeyStore", "NewKey", "TenantRecord"]
