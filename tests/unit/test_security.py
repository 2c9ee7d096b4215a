"""Units of the security layer on a real SQLite file: key verification, principals and
permissions, the audit chain, the background recorder, periods and durations."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from genaiops.config import Settings, load_settings
from genaiops.errors import AuthenticationError, InvalidRequest, PermissionDenied, RateLimited
from genaiops.monitoring.logs import JSONFormatter
from genaiops.security import audit, keys
from genaiops.security.audit import AuditEvent
from genaiops.security.keys import KeyStore, parse_duration
from genaiops.security.principal import Limits, Permission, Principal
from genaiops.security.recorder import Recorder, UsageDelta
from genaiops.security.service import SecurityService
from genaiops.security.usage import period_bounds
from genaiops.storage.db import Database

SYSTEM = Principal(tenant="system", role="admin", actor="test", via="cli")


@pytest.fixture
def service(tmp_path: Path) -> Any:
    svc = SecurityService(load_settings(data_dir=tmp_path))
    svc.start()
    yield svc
    asyncio.run(svc.close())


def spent(service: SecurityService, principal: Principal, prompt: int, completion: int) -> None:
    """Record one finished request's tokens, as the server does after an answer."""
    service.record_inference(
        principal,
        model="m",
        status=200,
        request_id="r",
        latency_s=0.1,
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


def assert_budget_after_restart(settings: Settings, secret: str, over: int, fits: int) -> None:
    """A new service on the same data (a restart) refuses ``over`` prompt tokens for the
    key ``secret`` with ``budget_exceeded`` and then admits ``fits``."""
    service = SecurityService(settings)
    service.start()
    try:
        principal = asyncio.run(service.authenticate(f"Bearer {secret}"))
        with pytest.raises(RateLimited) as info:
            asyncio.run(service.admit(principal, over))
        assert info.value.code == "budget_exceeded"
        asyncio.run(service.admit(principal, fits))
    finally:
        asyncio.run(service.close())


def test_every_verification_costs_exactly_one_constant_time_comparison(
    service: SecurityService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid, wrong-secret, unknown-id and malformed keys all run the same comparison, so
    response time does not reveal which part of a guess was right."""
    secret = service.create_key(SYSTEM, tenant="acme", role="user").secret
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", counting)
    candidates = {
        "valid": secret,
        "wrong secret": secret[:-1] + ("x" if secret[-1] != "x" else "y"),
        "unknown id": "gaiops_ffffffffffff_" + secret.split("_", 2)[2],
        "malformed": "gaiops_' OR 1=1 --",
        "not a key": "hello",
    }
    for name, candidate in candidates.items():
        calls.clear()
        try:
            principal = asyncio.run(service.authenticate(f"Bearer {candidate}"))
            assert name == "valid" and principal.tenant == "acme"
        except AuthenticationError:
            assert name != "valid"
        assert len(calls) == 1, name
        assert all(len(side) == 64 for side in calls[0]), name


def test_secrets_are_stored_only_as_hashes(service: SecurityService, tmp_path: Path) -> None:
    new = service.create_key(SYSTEM, tenant="acme", role="operator", name="ci")
    assert new.record.secret_hash == keys.hash_key(new.secret)
    assert new.secret not in json.dumps(new.record.public())
    service.recorder.flush()
    for path in tmp_path.glob("genaiops.db*"):
        assert new.secret.encode() not in path.read_bytes()


def test_expiry_and_revocation_status(service: SecurityService) -> None:
    new = service.create_key(SYSTEM, tenant="acme", role="user", expires_in_s=60)
    record = new.record
    assert record.status() == "active"
    assert record.status(at_us=record.expires_us) == "expired"  # type: ignore[arg-type]
    revoked = service.revoke_key(SYSTEM, record.id)
    assert revoked.status() == "revoked"
    with pytest.raises(AuthenticationError) as info:
        asyncio.run(service.authenticate(f"Bearer {new.secret}"))
    assert info.value.code == "revoked_api_key"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("admin", set(Permission)),
        (
            "operator",
            set(Permission) - {Permission.MANAGE_KEYS, Permission.MANAGE_TENANTS},
        ),
        ("user", {Permission.INFERENCE}),
    ],
)
def test_role_grants(role: Any, allowed: set[Permission]) -> None:
    principal = Principal(tenant="acme", role=role, actor="k", via="api_key")
    assert {p for p in Permission if principal.can(p)} == allowed
    for permission in set(Permission) - allowed:
        with pytest.raises(PermissionDenied):
            principal.require(permission)


def test_tenant_scope() -> None:
    tenant_admin = Principal(tenant="acme", role="admin", actor="k", via="api_key")
    assert tenant_admin.scope(None) == "acme"
    assert tenant_admin.scope("acme") == "acme"
    with pytest.raises(PermissionDenied):
        tenant_admin.scope("globex")
    assert not tenant_admin.is_system_admin
    assert SYSTEM.is_system_admin and SYSTEM.scope(None) is None
    assert SYSTEM.scope("globex") == "globex"


def test_tenant_admin_cannot_create_keys_elsewhere(service: SecurityService) -> None:
    tenant_admin = Principal(tenant="acme", role="admin", actor="k", via="api_key")
    assert service.create_key(tenant_admin, role="user").record.tenant == "acme"
    with pytest.raises(PermissionDenied):
        service.create_key(tenant_admin, tenant="system", role="admin")
    with pytest.raises(PermissionDenied):
        service.set_tenant(tenant_admin, "acme", Limits(rpm=1000))


def test_limits_through_the_service(service: SecurityService) -> None:
    new = service.create_key(SYSTEM, tenant="acme", role="user", limits=Limits(rpm=2, tpm=100))

    async def scenario() -> list[str]:
        principal = await service.authenticate(f"Bearer {new.secret}")
        outcomes = []
        for prompt in (10, 10, 10):
            try:
                admission = await service.admit(principal, prompt)
                await service.settle(admission, prompt, 5)
                outcomes.append("ok")
            except RateLimited as exc:
                outcomes.append(exc.code or "")
        return outcomes

    assert asyncio.run(scenario()) == ["ok", "ok", "requests_exceeded"]


def test_budget_survives_a_restart(tmp_path: Path) -> None:
    """Budgets are re-seeded from the usage table, so a restart does not reset them."""
    settings = load_settings(data_dir=tmp_path)
    first = SecurityService(settings)
    first.start()
    new = first.create_key(
        SYSTEM, tenant="acme", role="user", limits=Limits(budget_tokens=100, budget_period="day")
    )
    principal = asyncio.run(first.authenticate(f"Bearer {new.secret}"))
    spent(first, principal, 60, 30)
    asyncio.run(first.close())
    assert_budget_after_restart(settings, new.secret, over=20, fits=10)  # 90 + 10 fits exactly


def test_tenant_tokens_and_budget_are_shared_by_its_keys_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    """A tenant's tokens per minute and budget hold across all its keys (each key has no
    limit of its own), the change is audited, and the budget is re-seeded from the usage
    of every key of the tenant after a restart."""
    settings = load_settings(data_dir=tmp_path)
    first = SecurityService(settings)
    first.start()
    first.set_tenant(SYSTEM, "acme", Limits(tpm=100, budget_tokens=150, budget_period="day"))
    one = first.create_key(SYSTEM, tenant="acme", role="user")
    two = first.create_key(SYSTEM, tenant="acme", role="user")
    other = first.create_key(SYSTEM, tenant="globex", role="user")

    async def spend() -> list[str]:
        p1 = await first.authenticate(f"Bearer {one.secret}")
        p2 = await first.authenticate(f"Bearer {two.secret}")
        p3 = await first.authenticate(f"Bearer {other.secret}")
        outcomes = []
        admission = await first.admit(p1, 60)
        await first.settle(admission, 60, 30)  # 90 of the tenant's 100 this minute
        for principal, prompt in ((p2, 20), (p3, 20), (p2, 5)):
            try:
                await first.settle(await first.admit(principal, prompt), prompt, 0)
                outcomes.append("ok")
            except RateLimited as exc:
                outcomes.append(exc.code or "")
        return outcomes

    # The second key is refused on the first key's spending; another tenant is not.
    assert asyncio.run(spend()) == ["tokens_exceeded", "ok", "ok"]
    first.recorder.flush()
    changes = list(audit.query(first.db, event="tenant.updated"))
    assert [(r["tenant"], r["detail"]["tpm"], r["detail"]["budget_tokens"]) for r in changes] == [
        ("acme", 100, 150)
    ]
    for key, tokens in ((one, 90), (two, 40)):
        principal = asyncio.run(first.authenticate(f"Bearer {key.secret}"))
        spent(first, principal, tokens, 0)
    asyncio.run(first.close())
    # 130 spent by both keys: 30 more is over the tenant's 150, 20 fits exactly.
    assert_budget_after_restart(settings, two.secret, over=30, fits=20)


def test_rotation_keeps_what_the_key_spent(tmp_path: Path) -> None:
    """Limits and budgets belong to the line of keys: rotating a key (twice here) neither
    resets its budget in this process nor after a restart (seeded from the usage of every
    key of the line)."""
    settings = load_settings(data_dir=tmp_path)
    first = SecurityService(settings)
    first.start()
    limits = Limits(rpm=3, budget_tokens=100, budget_period="day")
    new = first.create_key(SYSTEM, tenant="acme", role="user", limits=limits)
    principal = asyncio.run(first.authenticate(f"Bearer {new.secret}"))
    asyncio.run(first.admit(principal, 0))
    spent(first, principal, 60, 30)
    first.recorder.flush()
    rotated, _ = first.rotate_key(SYSTEM, new.record.id)
    again, _ = first.rotate_key(SYSTEM, rotated.record.id)
    newest = asyncio.run(first.authenticate(f"Bearer {again.secret}"))
    assert newest.lineage == (new.record.id, rotated.record.id, again.record.id)
    assert newest.limits_id == new.record.id
    asyncio.run(first.admit(newest, 0))
    asyncio.run(first.admit(newest, 0))
    with pytest.raises(RateLimited) as info:
        asyncio.run(first.admit(newest, 0))  # the fourth request of the line this minute
    assert info.value.code == "requests_exceeded"
    asyncio.run(first.close())
    # 90 spent by the first key of the line: 20 more is over, 10 fits.
    assert_budget_after_restart(settings, again.secret, over=20, fits=10)


def _events(n: int) -> list[AuditEvent]:
    return [AuditEvent(event="inference", ts_us=1_000 + i, tenant="acme") for i in range(n)]


def test_audit_chain_links_batches_and_verifies(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    with db.begin() as conn:
        assert audit.append(conn, _events(3)) == 3
    with db.begin() as conn:
        assert audit.append(conn, _events(2)) == 5
    result = audit.verify(db, batch=2)
    assert result.ok and result.records == 5
    records = list(audit.query(db))
    assert [r["prev_hash"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    db.close()


def test_two_rotations_of_one_key_leave_one_successor(tmp_path: Path) -> None:
    """Two replicas (a client retrying after a timeout) rotate one key at once: both saw
    it active, only one gets a successor; the other is told the key is revoked."""
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    here, there = KeyStore(db), KeyStore(db)
    old = here.create(tenant="acme", role="user")
    seen = here.get(old.record.id)
    there.rotate(old.record.id)
    # This replica read the key before the other rotated it.
    here.get = lambda *_: seen  # type: ignore[method-assign]
    with pytest.raises(InvalidRequest, match="revoked"):
        here.rotate(old.record.id)
    live = [k for k in there.all("acme") if k.rotated_from == old.record.id]
    assert len(live) == 1
    db.close()


def test_a_key_revoked_while_it_is_read_is_not_cached_as_active(tmp_path: Path) -> None:
    """A request reads a key just as an administrator revokes it in the same process: the
    revocation applies at once, the read's stale copy is not cached for later requests."""
    from sqlalchemy import event

    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    store = KeyStore(db)
    key_id = store.create(tenant="acme", role="user").record.id
    revoking: list[bool] = []

    def revoke_meanwhile(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SELECT") and "FROM api_keys" in statement and not revoking:
            revoking.append(True)
            store.revoke(key_id)

    event.listen(db.engine, "after_cursor_execute", revoke_meanwhile)
    read = store.load(key_id)
    event.remove(db.engine, "after_cursor_execute", revoke_meanwhile)
    assert revoking and read is not None and read.revoked_us is None  # read before it
    hit, cached = store.cached(key_id)
    assert not hit or (cached is not None and cached.revoked_us is not None)
    loaded = store.load(key_id)
    assert loaded is not None and loaded.status() == "revoked"
    db.close()


def test_audit_detail_never_keeps_a_key(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    leaked = "gaiops_0123456789ab_" + "s" * 43
    with db.begin() as conn:
        audit.append(conn, [AuditEvent("x", 1, detail={"oops": f"key was {leaked}"})])
    (record,) = audit.query(db)
    assert leaked not in json.dumps(record)
    assert audit.verify(db).ok
    db.close()


def test_recorder_batches_usage_and_keeps_order(tmp_path: Path) -> None:
    from genaiops.security import usage

    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    recorder = Recorder(db, flush_interval_s=0.05)
    recorder.start()
    for i in range(50):
        recorder.usage(UsageDelta("2026-11-25", "acme", "k1", "m", prompt_tokens=2, errors=i % 2))
        recorder.audit(AuditEvent("inference", ts_us=i, request_id=f"r{i}"))
    recorder.flush()
    rows = usage.query(db, group_by=["tenant"])
    assert rows == [
        {
            "tenant": "acme",
            "requests": 50,
            "errors": 25,
            "prompt_tokens": 100,
            "completion_tokens": 0,
            "total_tokens": 100,
        }
    ]
    assert [r["request_id"] for r in audit.query(db)] == [f"r{i}" for i in range(50)]
    recorder.close()
    db.close()


def test_a_record_the_database_refuses_never_stops_the_writer(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    recorder = Recorder(db, flush_interval_s=0.05)
    recorder.start()
    # SQLite stores at most 64-bit integers: this batch can never be written.
    recorder.audit(AuditEvent("inference", ts_us=1, request_id="bad", prompt_tokens=10**20))
    with pytest.raises(OverflowError):
        recorder.flush()
    # The writer lives on: later records are written, and the chain is intact.
    recorder.audit(AuditEvent("key.created", ts_us=2, request_id="next"))
    recorder.flush()
    assert [r["request_id"] for r in audit.query(db)] == ["next"]
    assert audit.verify(db).ok
    recorder.close()
    db.close()


def test_upstream_token_counts_are_taken_only_when_they_are_counts() -> None:
    from genaiops.engines.base import ChatMessage, GenerationRequest, SamplingParams
    from genaiops.engines.remote import _counts

    request = GenerationRequest("r", "m", SamplingParams(),
                                messages=[ChatMessage("user", "x" * 40)])  # fmt: skip
    estimate = (request.estimated_tokens(), 3)  # 12 characters of answer: 3 tokens
    assert _counts({"prompt_tokens": 7, "completion_tokens": 2}, request, "a" * 12, 1) == (7, 2)
    assert _counts({"prompt_tokens": 7.0, "completion_tokens": 0}, request, "", 0) == (7, 0)
    for bad in (-100_000, 10**20, 1.5, "12", None, True, float("nan")):
        usage = {"prompt_tokens": bad, "completion_tokens": bad}
        assert _counts(usage, request, "a" * 12, 1) == estimate, bad


def test_periods() -> None:
    noon = dt.datetime(2026, 12, 31, 12, 0, tzinfo=dt.UTC)
    assert period_bounds("day", noon) == ("2026-12-31", 12 * 3600)
    start, ttl = period_bounds("month", noon)
    assert start == "2026-12-01" and ttl == 12 * 3600  # the month ends at midnight
    start, ttl = period_bounds("month", dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    assert start == "2026-02-01" and ttl == 28 * 86400


@pytest.mark.parametrize(
    "text", ["", "30", "d", "-1d", "0h", "1y", "30 days", "99999999999999d", "36601d"]
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_duration(text)


def test_durations() -> None:
    assert parse_duration("90m") == 5400
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("2w") == 14 * 86400


@pytest.mark.parametrize(
    "text", ["99999999999999999999", "1e9", "9999-99-99", "yesterday", "-5", "10000-01-01"]
)
def test_bad_instants(text: str) -> None:
    from genaiops.security.audit import parse_instant

    with pytest.raises(InvalidRequest, match="since"):
        parse_instant(text, "since")


def test_instants() -> None:
    from genaiops.security.audit import parse_instant

    assert parse_instant("1700000000", "since") == 1_700_000_000_000_000
    assert parse_instant("2026-01-01", "since") == 1_767_225_600_000_000
    assert parse_instant("9999-12-31T23:59:59Z", "until") == 253_402_300_799_000_000


def test_key_id_parsing() -> None:
    assert KeyStore.key_id_of("gaiops_0123456789ab_" + "A" * 43) == "0123456789ab"
    for bad in ("gaiops_0123456789ab_short", "gaiops_XYZ456789abc_" + "A" * 43, "", "gaiops_"):
        assert KeyStore.key_id_of(bad) is None


def test_json_log_lines_carry_extra_fields() -> None:
    record = logging.LogRecord("genaiops.access", logging.INFO, "", 0, "request", None, None)
    record.request_id = "abc"
    record.status = 200
    line = json.loads(JSONFormatter().format(record))
    assert line["msg"] == "request" and line["request_id"] == "abc" and line["status"] == 200
    assert line["level"] == "info" and line["logger"] == "genaiops.access"


def test_jwt_verifier_with_a_pem_public_key(tmp_path: Path) -> None:
    import time

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from genaiops.config import JWTSettings
    from genaiops.security.jwt import JWTVerifier

    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "idp.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings = JWTSettings(public_key_file=pem, issuer="https://idp", audience="genaiops")
    verifier = JWTVerifier(settings)
    claims = {
        "tenant": "acme",
        "sub": "svc",
        "iss": "https://idp",
        "aud": "genaiops",
        "exp": int(time.time()) + 60,
    }
    principal = verifier.verify(jwt.encode(claims, key, algorithm="ES256"))
    assert (principal.tenant, principal.role, principal.actor) == ("acme", "user", "jwt:svc")
    # A token signed by any other key is refused.
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(AuthenticationError):
        verifier.verify(jwt.encode(claims, other, algorithm="ES256"))
    # Issuer and audience are required claims, not only checked when present.
    for claim in ("iss", "aud"):
        partial = {k: v for k, v in claims.items() if k != claim}
        with pytest.raises(AuthenticationError, match=claim):
            verifier.verify(jwt.encode(partial, key, algorithm="ES256"))
    # The reserved system tenant administers the installation: refused unless allowed.
    admin = claims | {"tenant": "system", "role": "admin"}
    with pytest.raises(AuthenticationError, match="system"):
        verifier.verify(jwt.encode(admin, key, algorithm="ES256"))
    trusting = JWTVerifier(settings.model_copy(update={"allow_system_tenant": True}))
    assert trusting.verify(jwt.encode(admin, key, algorithm="ES256")).is_system_admin


def test_jwks_entries_that_are_not_signing_keys_are_skipped(tmp_path: Path) -> None:
    import json

    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    from genaiops.config import JWTSettings
    from genaiops.errors import ConfigError
    from genaiops.security.jwt import JWTVerifier

    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    signing = json.loads(RSAAlgorithm.to_jwk(public)) | {"kid": "sig-1", "use": "sig"}
    encryption = dict(signing, kid="enc-1", use="enc", alg="RSA-OAEP")
    broken = {"kty": "RSA", "kid": "bad", "n": "not base64!", "e": "AQAB"}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [encryption, broken, signing]}))
    settings = JWTSettings(jwks_file=jwks, issuer="https://idp", audience="genaiops")
    assert set(JWTVerifier(settings)._jwks) == {"sig-1"}
    jwks.write_text(json.dumps({"keys": [encryption, broken]}))
    with pytest.raises(ConfigError, match="no usable signing keys"):
        JWTVerifier(settings)


def test_jwt_settings_need_exactly_one_key_source(tmp_path: Path) -> None:
    from genaiops.config import JWTSettings

    names = {"issuer": "https://idp", "audience": "genaiops"}
    with pytest.raises(ValueError, match="exactly one"):
        JWTSettings(**names)
    with pytest.raises(ValueError, match="exactly one"):
        JWTSettings(public_key_file=tmp_path / "a", jwks_file=tmp_path / "b", **names)
    # Without an issuer and an audience, tokens minted for other applications would pass.
    for missing in names:
        with pytest.raises(ValueError, match=missing):
            JWTSettings(
                public_key_file=tmp_path / "a", **{k: v for k, v in names.items() if k != missing}
            )


def test_recorder_keeps_and_retries_a_batch_when_the_database_fails(tmp_path: Path) -> None:
    from contextlib import contextmanager

    from sqlalchemy.exc import OperationalError

    class Flaky(Database):
        """The real SQLite store, unavailable for its first transaction."""

        failures = 1

        @contextmanager
        def begin(self) -> Any:
            if self.failures:
                self.failures -= 1
                raise OperationalError("BEGIN", {}, Exception("database is locked"))
            with super().begin() as conn:
                yield conn

    db = Flaky(f"sqlite:///{tmp_path / 'f.db'}")
    recorder = Recorder(db, flush_interval_s=0.02)
    recorder.start()
    for i in range(10):
        recorder.audit(AuditEvent("inference", ts_us=i, request_id=f"r{i}"))
    with pytest.raises(OperationalError):
        recorder.flush()  # the caller of a durable write learns that it failed
    # The writer retries the kept batch by itself.
    deadline = time.monotonic() + 10
    while len(list(audit.query(db))) < 10:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    recorder.audit(AuditEvent("key.created", ts_us=99))
    recorder.flush()
    assert db.failures == 0
    records = list(audit.query(db))
    assert [r["request_id"] for r in records[:10]] == [f"r{i}" for i in range(10)]
    assert records[-1]["event"] == "key.created" and audit.verify(db).ok
    recorder.close()
    db.close()


def test_model_catalog_changes_are_audited(service: SecurityService) -> None:
    service.record_start(["a", "b"], {"version": "1"})
    service.record_start(["a", "b"], {"version": "1"})
    service.record_start(["a", "c"], {"version": "1"})
    service.recorder.flush()
    events = [(r["event"], r["detail"]) for r in audit.query(service.db)]
    changes = [detail for event, detail in events if event == "models.changed"]
    assert changes == [{"added": ["c"], "removed": ["b"]}]
    assert [e for e, _ in events].count("server.started") == 3


def test_a_deleted_audit_head_is_restored_from_the_newest_record(tmp_path: Path) -> None:
    import sqlite3

    settings = load_settings(data_dir=tmp_path)
    first = SecurityService(settings)
    first.start()
    first.record_event("one", durable=True)
    first.record_event("two", durable=True)
    asyncio.run(first.close())
    with sqlite3.connect(tmp_path / "genaiops.db") as conn:
        conn.execute("DELETE FROM audit_head")
    second = SecurityService(settings)
    second.start()
    try:
        # Appends go on after the newest record instead of colliding with record 1.
        second.record_event("three", durable=True)
        events = [(r["seq"], r["event"]) for r in audit.query(second.db)]
        assert events[:2] == [(1, "one"), (2, "two")]
        assert events[2] == (3, "audit.head_restored")
        assert events[3] == (4, "three")
        result = second.verify_audit()
        assert not result.ok and result.first_bad_seq == 3
        assert "head" in (result.reason or "")
    finally:
        asyncio.run(second.close())
