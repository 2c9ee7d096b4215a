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

# Files uploaded for fine-tuning (OpenAI's /v1/files); the bytes live under
# <data_dir>/files/<id> (<id>.txt or <id>.md for plain-text uploads, which train as text).
files = Table(
    "files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(64), nullable=False, index=True),
    Column("filename", String(255), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

# Fine-tuning jobs. ``status`` follows OpenAI's (validating_files, queued, running,
# succeeded, failed, cancelled); ``config`` and ``result`` are JSON.
fine_tuning_jobs = Table(
    "fine_tuning_jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(64), nullable=False, index=True),
    Column("created_by", String(96)),
    Column("base_model", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("training_file", String(1024), nullable=False),
    Column("validation_file", String(1024)),
    Column("config", Text, nullable=False),
    Column("status", String(24), nullable=False, index=True),
    Column("error", Text),
    Column("fine_tuned_model", String(160)),
    Column("trained_tokens", BigInteger),
    Column("result", Text),
    Column("dataset_sha256", String(64)),
    Column("run_id", String(64)),
    Column("cancel_requested", Integer, nullable=False, default=0),
    Column("worker", String(96)),
    Column("heartbeat_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    Column("started_us", BigInteger),
    Column("finished_us", BigInteger),
)

fine_tuning_events = Table(
    "fine_tuning_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(40), nullable=False, index=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("level", String(8), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", Text),
)
