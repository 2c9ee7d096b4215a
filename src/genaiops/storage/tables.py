"""Tables of the metadata store (SQLAlchemy Core; no ORM on the request path).

Times are integer microseconds since the epoch so that values hash identically on SQLite
and PostgreSQL (the audit chain depends on it).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

SCHEMA_VERSION = 1

schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

tenants = Table(
    "tenants",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("budget_tokens", BigInteger),
    Column("budget_period", String(8), nullable=False, default="month"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    # The public half of the key ("k" + 12 hex); the secret is stored only as a hash.
    Column("id", String(32), primary_key=True),
    Column("tenant", String(64), nullable=False, index=True),
    Column("name", String(128), nullable=False, default=""),
    Column("role", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("budget_tokens", BigInteger),
    Column("budget_period", String(8), nullable=False, default="month"),
    # JSON list of allowed model names; NULL allows every model.
    Column("models", Text),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger),
    Column("revoked_us", BigInteger),
    Column("created_by", String(96)),
    Column("rotated_from", String(32)),
)

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("tenant", String(64), primary_key=True),
    Column("key_id", String(96), primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("requests", BigInteger, nullable=False, default=0),
    Column("errors", BigInteger, nullable=False, default=0),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Index("ix_usage_tenant_day", "tenant", "day"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("event", String(64), nullable=False),
    Column("tenant", String(64)),
    Column("actor", String(96)),
    Column("request_id", String(128)),
    Column("model", String(128)),
    Column("status", Integer),
    Column("latency_us", BigInteger),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    # Canonical JSON (sorted keys), stored exactly as it was hashed.
    Column("detail", Text, nullable=False, default="{}"),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_tenant_ts", "tenant", "ts_us"),
    Index("ix_audit_ts", "ts_us"),
)

# One row: the sequence number and hash of the newest audit record. Writers lock it, which
# serialises appends across processes, and verification compares it with the last record
# so that deleting the newest records is detected too.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Guardrail policy overrides: scope is "tenant:<name>", "key:<id>" or "model:<name>";
# policies is the JSON of {guard: GuardPolicy} for one stage.
guardrail_policies = Table(
    "guardrail_policies",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("stage", String(16), primary_key=True),
    Column("policies", Text, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("updated_by", String(96)),
)
