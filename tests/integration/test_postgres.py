"""The metadata store on a real PostgreSQL server: keys, usage upserts and the audit chain,
including two writers appending concurrently to one chain."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from genaiops.config import load_settings
from genaiops.errors import StoreUnavailable
from genaiops.registry.locking import RegistryLock
from genaiops.security import audit
from genaiops.security.audit import AuditEvent
from genaiops.security.keys import KeyStore
from genaiops.security.principal import Limits, Principal
from genaiops.security.recorder import Recorder
from genaiops.security.service import SecurityService
from genaiops.security.usage import query
from genaiops.storage.db import Database
from tests.training.conftest import hold_registry_lock

pytestmark = pytest.mark.integration

SYSTEM = Principal(tenant="system", role="admin", actor="test", via="cli")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database several replicas share: an SQLite file, or a fresh PostgreSQL one."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("database_url"))
    return f"sqlite:///{tmp_path / 'shared.db'}"


def test_keys_usage_and_audit_on_postgres(database_url: str, tmp_path: Path) -> None:
    settings = load_settings(data_dir=str(tmp_path), storage={"url": database_url})
    service = SecurityService(settings)
    service.start()
    try:
        new = service.create_key(SYSTEM, tenant="acme", role="user", limits=Limits(rpm=5))
        principal = asyncio.run(service.authenticate(f"Bearer {new.secret}"))
        assert principal.tenant == "acme" and principal.limits.rpm == 5
        for flush in range(2):
            for i in range(3):
                service.record_inference(
                    principal,
                    model="m",
                    status=200,
                    request_id=f"r{flush}{i}",
                    latency_s=0.01,
                    prompt_tokens=10,
                    completion_tokens=2,
                )
            service.recorder.flush()
        (row,) = query(service.db, group_by=["tenant", "model"])
        assert row["requests"] == 6 and row["prompt_tokens"] == 60
        assert service.verify_audit().ok
        revoked = service.revoke_key(SYSTEM, new.record.id)
        assert revoked.status() == "revoked"
    finally:
        asyncio.run(service.close())


def test_concurrent_writers_extend_one_chain(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(2)]
    databases[0].migrate()
    recorders = [Recorder(db, flush_interval_s=0.01) for db in databases]
    for recorder in recorders:
        recorder.start()

    def write(recorder: Recorder, label: str) -> None:
        for i in range(200):
            recorder.audit(AuditEvent("inference", ts_us=i, request_id=f"{label}{i}"))
            if i % 20 == 0:
                recorder.flush()

    threads = [
        threading.Thread(target=write, args=(r, label))
        for r, label in zip(recorders, "ab", strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for recorder in recorders:
        recorder.close()
    result = audit.verify(databases[0])
    assert result.ok and result.records == 400
    ids = [r["request_id"] for r in audit.query(databases[0])]
    # Each writer's records keep their order within the shared chain.
    for label in "ab":
        assert [x for x in ids if x.startswith(label)] == [f"{label}{i}" for i in range(200)]
    with databases[0].begin() as conn:
        conn.execute(text("UPDATE audit_log SET status = 500 WHERE seq = 123"))
    broken = audit.verify(databases[0])
    assert not broken.ok and broken.first_bad_seq == 123
    for db in databases:
        db.close()


def test_verify_reads_one_state_while_another_replica_appends(url: str) -> None:
    """Records another replica (or this process's writer) appends while a verification
    walks the chain are not reported as a broken log: the walk and the head it compares
    against come from one committed state."""
    reader, writer = Database(url), Database(url)
    with writer.begin() as conn:
        audit.append(conn, [AuditEvent("inference", ts_us=i) for i in range(20)])
    appended: list[int] = []

    def append_meanwhile(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The other replica commits just as the walk is done and the head is read.
        if "FROM audit_head" in statement:
            with writer.begin() as conn:
                appended.append(audit.append(conn, [AuditEvent("inference", ts_us=99)]))

    event.listen(reader.engine, "before_cursor_execute", append_meanwhile)
    try:
        result = audit.verify(reader, batch=6)
        assert appended == [21]
        assert result.ok, result.reason
        assert result.records == 20
        # The next verification sees the appended record, and the chain is still whole.
        event.remove(reader.engine, "before_cursor_execute", append_meanwhile)
        again = audit.verify(reader)
        assert again.ok and again.records == 21
    finally:
        reader.close()
        writer.close()


def test_keys_of_a_new_tenant_created_at_once_all_succeed(url: str) -> None:
    """Onboarding scripts create a new tenant's keys in parallel (on several replicas):
    each creates the tenant's row if missing, and none fails on another's new row."""
    here, there = KeyStore(Database(url)), KeyStore(Database(url))
    here.db.migrate()
    created: list[str] = []

    def other_replica_first(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The other replica creates the tenant's first key just before this one writes.
        if statement.startswith("INSERT INTO tenants") and not created:
            created.append(there.create(tenant="newco", role="user").record.id)

    event.listen(here.db.engine, "before_cursor_execute", other_replica_first)
    try:
        mine = here.create(tenant="newco", role="user")
        assert len(created) == 1
        assert {k.id for k in here.all("newco")} == {created[0], mine.record.id}
        assert here.tenant("newco") is not None
    finally:
        here.db.close()
        there.db.close()


def test_one_scopes_guardrail_policy_set_twice_at_once(url: str) -> None:
    """Two administrators set a tenant's first policy at the same moment (on two
    replicas): both succeed and the later write is the policy."""
    from genaiops.config import GuardPolicy, GuardrailsSettings
    from genaiops.guardrails.policies import PolicyStore

    here = PolicyStore(Database(url), GuardrailsSettings())
    there = PolicyStore(Database(url), GuardrailsSettings())
    here.db.migrate()
    written: list[bool] = []

    def other_replica_first(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO guardrail_policies") and not written:
            written.append(True)
            there.put("tenant:acme", "input", {"pii": GuardPolicy(action="flag")}, "bob")

    event.listen(here.db.engine, "before_cursor_execute", other_replica_first)
    try:
        here.put("tenant:acme", "input", {"pii": GuardPolicy(action="block")}, "ana")
        assert written
        (row,) = there.list()
        assert row["policies"]["pii"]["action"] == "block" and row["updated_by"] == "ana"
    finally:
        here.db.close()
        there.db.close()


def test_replicas_creating_the_schema_together_all_start(url: str) -> None:
    """Replicas rolled out together on an empty database all create the tables at once:
    none fails to start (a unique violation, "already exists", "database is locked")."""
    databases = [Database(url) for _ in range(4)]
    barrier = threading.Barrier(len(databases))
    errors: list[BaseException] = []

    def start(db: Database) -> None:
        barrier.wait()
        try:
            db.migrate()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with databases[0].connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM schema_info")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM audit_head")).scalar() == 1
    finally:
        for db in databases:
            db.close()


def test_replicas_starting_together_create_one_admin_key(url: str, tmp_path: Path) -> None:
    """Several replicas start at once on one empty database: one of them creates the
    administrator key (and says so); the others find it and create none."""
    schema = Database(url)
    schema.migrate()
    schema.close()
    services = [
        SecurityService(load_settings(data_dir=str(tmp_path / f"r{i}"), storage={"url": url}))
        for i in range(4)
    ]
    for service in services:
        service.start()
    barrier = threading.Barrier(len(services))
    secrets: list[str | None] = [None] * len(services)

    def boot(i: int) -> None:
        barrier.wait()
        secrets[i] = services[i].bootstrap_admin()

    threads = [threading.Thread(target=boot, args=(i,)) for i in range(len(services))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        created = [s for s in secrets if s is not None]
        assert len(created) == 1
        keys = services[0].keys.all()
        assert len(keys) == 1 and keys[0].role == "admin" and keys[0].tenant == "system"
        principal = asyncio.run(services[0].authenticate(f"Bearer {created[0]}"))
        assert principal.is_system_admin
        events = [e for e in audit.query(services[0].db) if e["event"] == "key.created"]
        assert len(events) == 1
    finally:
        for service in services:
            asyncio.run(service.close())


def test_replicas_on_other_hosts_share_the_registry_lock_through_postgres(
    database_url: str, tmp_path: Path
) -> None:
    """Replicas with their own data directories (other hosts: no shared file to lock)
    and one tracking server write one registry; with storage on PostgreSQL its write
    lock is an advisory lock there, so a change waits for another replica's."""
    shared = {"storage": {"url": database_url},
              "finetune": {"tracking_uri": "http://mlflow.internal:5000"}}  # fmt: skip
    holder = hold_registry_lock(data_dir=tmp_path / "host-a", **shared)
    try:
        here = load_settings(data_dir=str(tmp_path / "host-b"), **shared)
        with pytest.raises(StoreUnavailable, match="another process"), RegistryLock(here, 0.5):
            pass
        # Another tracking store is another registry: not held.
        with RegistryLock(load_settings(data_dir=str(tmp_path / "host-b"),
                                        storage={"url": database_url})):  # fmt: skip
            pass
    finally:
        holder.communicate("\n", timeout=30)
    with RegistryLock(here, timeout_s=5):
        pass
    assert not (tmp_path / "host-b" / "registry.lock").exists()
