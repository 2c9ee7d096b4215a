"""Authentication, roles, tenant isolation, rate limits, usage, audit and metrics, through
the HTTP API of a real server with the real bundled model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import (
    METRICS_TOKEN,
    Server,
    genaiops_cli,
    openai_client,
    start_server,
    stop_server,
)

MODEL = "smollm2-135m-instruct"
# About a dozen tokens: more than what is left in a bucket or budget the tests just drained.
LONGER_PROMPT = "Hi there, my good friend. How are you doing today, and how is the weather?"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def admin(server: Server, method: str, path: str, **kw: Any) -> httpx.Response:
    kw.setdefault("headers", server.headers)
    return httpx.request(method, server.url + path, timeout=60, **kw)


def new_key(server: Server, admin_key: str | None = None, **body: Any) -> dict[str, Any]:
    """Create a key through the admin API; ``tenant`` defaults to a fresh unique tenant."""
    if admin_key is None:
        body.setdefault("tenant", "t" + uuid.uuid4().hex[:10])
    headers = bearer(admin_key) if admin_key else server.headers
    r = admin(server, "POST", "/admin/keys", json=body, headers=headers)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    assert created["key"].startswith("gaiops_")
    return created


def complete(server: Server, key: str, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "prompt": "Hello", "max_tokens": 2, "temperature": 0} | body
    return httpx.post(
        server.url + "/v1/completions", json=payload, headers=bearer(key), timeout=120
    )


def error_of(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code, error
    return error


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/generate"),
        ("GET", "/admin/keys"),
        ("GET", "/admin/audit"),
        ("GET", "/v1/no-such-route"),
    ],
)
def test_missing_credentials_are_401_everywhere(server: Server, method: str, path: str) -> None:
    r = httpx.request(method, server.url + path, json={"model": MODEL}, timeout=30)
    error_of(r, 401, "missing_api_key")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["x-request-id"]


def test_public_probes_need_no_credentials(server: Server) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert httpx.get(server.url + path, timeout=30).status_code == 200, path


@pytest.mark.parametrize(
    "credential",
    [
        "Bearer gaiops_000000000000_" + "A" * 43,  # well-formed, unknown id
        "Bearer not-a-key",
        "Bearer ' OR '1'='1",
        "Bearer gaiops_' OR 1=1 --",
        "Bearer gaiops_abcdefabcdef_x'; DROP TABLE api_keys; --aaaaaaaaaaaaaaaaaaaaaaaa",
        "Bearer %00%00",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer",
        "Bearer two words",
        "Token gaiops_abc",
        "Bearer " + "a" * 9000,
    ],
)
def test_invalid_credentials_are_401(server: Server, credential: str) -> None:
    r = httpx.get(server.url + "/v1/models", headers={"Authorization": credential}, timeout=30)
    error_of(r, 401)
    # The key store is intact and the admin key still works afterwards.
    assert admin(server, "GET", "/admin/keys").status_code == 200


def test_wrong_secret_for_a_real_key_id_is_401(server: Server) -> None:
    key = new_key(server)["key"]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    error_of(complete(server, forged), 401, "invalid_api_key")
    assert complete(server, key).status_code == 200


def test_huge_authorization_header_does_not_crash(server: Server) -> None:
    r = httpx.get(
        server.url + "/v1/models", headers={"Authorization": "Bearer " + "x" * 200_000}, timeout=30
    )
    assert r.status_code in (400, 401, 431)
    assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200


def test_huge_numbers_in_audit_queries_are_400(server: Server) -> None:
    huge = "9" * 23
    error = error_of(admin(server, "GET", "/admin/audit", params={"after_seq": huge}), 400)
    assert error["param"] == "after_seq"  # the parameter's name, not "query.after_seq"
    anchor = f"{huge}:{'0' * 64}"
    error_of(admin(server, "GET", "/admin/audit/verify", params={"anchor": anchor}), 400)


def test_only_the_administrator_prunes_the_audit_log(server: Server) -> None:
    operator = new_key(server, role="operator")["key"]
    refused = admin(server, "DELETE", "/admin/audit", params={"before": "1"},
                    headers=bearer(operator))  # fmt: skip
    error_of(refused, 403, "insufficient_role")
    error_of(admin(server, "DELETE", "/admin/audit", params={"before": "someday"}), 400)
    # Nothing is older than 1970-01-01 00:00:01: nothing pruned, the chain untouched.
    kept = admin(server, "DELETE", "/admin/audit", params={"before": "1"})
    assert kept.status_code == 200 and kept.json() == {"pruned": 0, "through_seq": None}
    assert admin(server, "GET", "/admin/audit/verify").json()["ok"] is True


def test_revoked_and_rotated_keys_stop_working(server: Server) -> None:
    created = new_key(server)
    key, key_id = created["key"], created["id"]
    assert complete(server, key).status_code == 200
    revoked = admin(server, "DELETE", f"/admin/keys/{key_id}")
    assert revoked.json()["status"] == "revoked"
    error_of(complete(server, key), 401, "revoked_api_key")

    other = new_key(server, role="user", rpm=100)
    rotated = admin(server, "POST", f"/admin/keys/{other['id']}/rotate")
    assert rotated.status_code == 201
    fresh = rotated.json()
    assert fresh["rotated_from"] == other["id"] and fresh["rpm"] == 100
    assert fresh["tenant"] == other["tenant"]
    error_of(complete(server, other["key"]), 401, "revoked_api_key")
    assert complete(server, fresh["key"]).status_code == 200


def test_attempts_on_a_tenants_keys_are_in_its_audit_log(server: Server) -> None:
    created = new_key(server, role="admin")
    tenant, key_id = created["tenant"], created["id"]
    wrong = created["key"][:-4] + "XXXX"  # the real key id, a wrong secret
    error_of(complete(server, wrong), 401, "invalid_api_key")
    records = admin(
        server,
        "GET",
        "/admin/audit",
        params={"event": "auth.failure"},
        headers=bearer(created["key"]),
    ).json()["data"]
    assert [r["detail"]["key_id"] for r in records] == [key_id]
    assert records[0]["tenant"] == tenant and records[0]["status"] == 401


def test_expired_key_is_401(server: Server) -> None:
    key = new_key(server, expires="1s")["key"]
    time.sleep(1.2)
    error_of(complete(server, key), 401, "expired_api_key")


def test_secret_is_shown_once_and_never_listed(server: Server) -> None:
    created = new_key(server)
    listed = admin(server, "GET", "/admin/keys", params={"tenant": created["tenant"]}).json()
    assert [k["id"] for k in listed["data"]] == [created["id"]]
    assert listed["data"][0]["key"] is None
    assert created["key"] not in json.dumps(listed)
    fetched = admin(server, "GET", f"/admin/keys/{created['id']}").json()
    assert fetched["key"] is None and fetched["redacted_key"].startswith("gaiops_")


def test_admin_api_validates_input(server: Server) -> None:
    for body in (
        {"tenant": "Bad Tenant!", "role": "user"},
        {"tenant": "ok", "role": "root"},
        {"tenant": "ok", "rpm": -1},
        {"tenant": "ok", "expires": "forever"},
        {"tenant": "ok", "unknown_field": 1},
        {"tenant": "", "role": "admin"},
        {"tenant": "ok", "expires": ""},
    ):
        error_of(admin(server, "POST", "/admin/keys", json=body), 400)
    error_of(admin(server, "GET", "/admin/keys/nope"), 404, "key_not_found")
    # "?tenant=" empty is refused, not read as "every tenant" or "none".
    for path in ("/admin/keys", "/admin/usage", "/admin/audit", "/admin/tenants"):
        error_of(admin(server, "GET", path, params={"tenant": ""}), 400)
    r = admin(server, "DELETE", "/admin/guardrails/policies", params={"stage": "foo"})
    error_of(r, 400)


# -- roles and models -------------------------------------------------------------------------


def test_roles(server: Server) -> None:
    tenant = "roles" + uuid.uuid4().hex[:6]
    user = new_key(server, tenant=tenant, role="user")["key"]
    operator = new_key(server, tenant=tenant, role="operator")["key"]
    tenant_admin = new_key(server, tenant=tenant, role="admin")["key"]

    error_of(admin(server, "GET", "/admin/keys", headers=bearer(user)), 403, "insufficient_role")
    error_of(admin(server, "GET", "/admin/usage", headers=bearer(user)), 403)
    error_of(admin(server, "GET", "/admin/audit", headers=bearer(user)), 403)
    assert complete(server, user).status_code == 200

    assert admin(server, "GET", "/admin/usage", headers=bearer(operator)).status_code == 200
    assert admin(server, "GET", "/admin/audit", headers=bearer(operator)).status_code == 200
    error_of(admin(server, "GET", "/admin/keys", headers=bearer(operator)), 403)

    # A tenant administrator manages keys of its own tenant only, and not tenant limits.
    created = new_key(server, admin_key=tenant_admin, role="user")
    assert created["tenant"] == tenant
    r = admin(
        server, "POST", "/admin/keys", json={"tenant": "elsewhere"}, headers=bearer(tenant_admin)
    )
    error_of(r, 403, "wrong_tenant")
    r = admin(
        server, "PUT", f"/admin/tenants/{tenant}", json={"rpm": 5}, headers=bearer(tenant_admin)
    )
    error_of(r, 403)
    r = admin(server, "GET", "/admin/audit/verify", headers=bearer(tenant_admin))
    error_of(r, 403)
    # Every refusal of a valid key is in the tenant's own audit log.
    records = admin(
        server, "GET", "/admin/audit", params={"tenant": tenant, "event": "auth.denied"}
    ).json()["data"]
    paths = sorted(r["detail"]["path"] for r in records)
    assert paths.count("/admin/keys") == 3 and "/admin/audit/verify" in paths
    assert {r["status"] for r in records} == {403} and {r["tenant"] for r in records} == {tenant}


def test_model_allowlist(server: Server) -> None:
    key = new_key(server, models=[MODEL])["key"]
    client = openai_client(server.base_url, key)
    assert [m.id for m in client.models.list()] == [MODEL]
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.completions.create(model="gemma3-270m", prompt="Hola", max_tokens=2)
    assert info.value.status_code == 403
    error_of(httpx.get(server.url + "/v1/models/gemma3-270m", headers=bearer(key), timeout=30), 403)
    assert client.completions.create(model=MODEL, prompt="Hi", max_tokens=2).choices
    # Embedders are models too: a key limited to a chat model may not use them.
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="use-multilingual", input="hola")
    embedder_only = new_key(server, models=["use-multilingual"])["key"]
    embedding = httpx.post(
        server.url + "/v1/embeddings",
        json={"model": "use-multilingual", "input": "hola"},
        headers=bearer(embedder_only),
        timeout=60,
    )
    assert embedding.status_code == 200, embedding.text
    client.close()


# -- tenant isolation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_tenants(server: Server) -> dict[str, Any]:
    """Two tenants, each with an admin key and some traffic of its own."""
    out: dict[str, Any] = {}
    for name in ("iso-a-" + uuid.uuid4().hex[:6], "iso-b-" + uuid.uuid4().hex[:6]):
        admin_key = new_key(server, tenant=name, role="admin")
        user_key = new_key(server, admin_key=admin_key["key"], role="user")
        assert complete(server, user_key["key"]).status_code == 200
        out[name] = {"admin": admin_key, "user": user_key}
    return out


def test_tenants_never_see_each_other(server: Server, two_tenants: dict[str, Any]) -> None:
    (a, keys_a), (b, keys_b) = two_tenants.items()
    headers_a = bearer(keys_a["admin"]["key"])
    # Tenant ids in headers are ignored: the tenant comes only from the credential.
    smuggled = headers_a | {"x-tenant-id": b, "openai-organization": b, "x-genaiops-tenant": b}
    for headers in (headers_a, smuggled):
        keys = admin(server, "GET", "/admin/keys", headers=headers).json()["data"]
        assert {k["tenant"] for k in keys} == {a}
        assert len(keys) == 2
        usage = admin(server, "GET", "/admin/usage", headers=headers).json()["data"]
        assert usage and {row["tenant"] for row in usage} == {a}
        records = admin(server, "GET", "/admin/audit", headers=headers).json()["data"]
        assert records and {r["tenant"] for r in records} == {a}
        tenants = admin(server, "GET", "/admin/tenants", headers=headers).json()["data"]
        assert [t["name"] for t in tenants] == [a]

    for path in ("/admin/keys", "/admin/usage", "/admin/audit", "/admin/tenants"):
        r = admin(server, "GET", path, params={"tenant": b}, headers=headers_a)
        error_of(r, 403, "wrong_tenant")

    foreign = keys_b["user"]["id"]
    error_of(admin(server, "GET", f"/admin/keys/{foreign}", headers=headers_a), 404)
    error_of(admin(server, "DELETE", f"/admin/keys/{foreign}", headers=headers_a), 404)
    error_of(admin(server, "POST", f"/admin/keys/{foreign}/rotate", headers=headers_a), 404)
    # The other tenant's key still works.
    assert complete(server, keys_b["user"]["key"]).status_code == 200


def test_system_admin_sees_every_tenant(server: Server, two_tenants: dict[str, Any]) -> None:
    names = set(two_tenants)
    keys = admin(server, "GET", "/admin/keys").json()["data"]
    assert names <= {k["tenant"] for k in keys}
    usage = admin(server, "GET", "/admin/usage").json()["data"]
    assert names <= {row["tenant"] for row in usage}
    one = next(iter(names))
    scoped = admin(server, "GET", "/admin/usage", params={"tenant": one}).json()["data"]
    assert {row["tenant"] for row in scoped} == {one}


# -- limits -----------------------------------------------------------------------------------


def test_usage_accounting_matches_responses(server: Server) -> None:
    created = new_key(server)
    totals = {"prompt_tokens": 0, "completion_tokens": 0}
    for prompt in ("One", "Two words", "Three more words"):
        usage = complete(server, created["key"], prompt=prompt, max_tokens=3).json()["usage"]
        for name in totals:
            totals[name] += usage[name]
    r = admin(
        server,
        "GET",
        "/admin/usage",
        params={"tenant": created["tenant"], "group_by": "key_id,model"},
    )
    rows = r.json()["data"]
    assert rows == [
        {
            "key_id": created["id"],
            "model": MODEL,
            "requests": 3,
            "errors": 0,
            "prompt_tokens": totals["prompt_tokens"],
            "completion_tokens": totals["completion_tokens"],
            "total_tokens": totals["prompt_tokens"] + totals["completion_tokens"],
        }
    ]


def test_inference_is_audited_with_the_request_id(server: Server) -> None:
    created = new_key(server)
    request_id = "audit-" + uuid.uuid4().hex
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3},
        headers=bearer(created["key"]) | {"x-request-id": request_id},
        timeout=60,
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == request_id
    usage = r.json()["usage"]
    records = admin(
        server, "GET", "/admin/audit", params={"tenant": created["tenant"], "event": "inference"}
    ).json()["data"]
    (record,) = [x for x in records if x["request_id"] == request_id]
    assert record["actor"] == created["id"]
    assert record["model"] == MODEL and record["status"] == 200
    assert record["prompt_tokens"] == usage["prompt_tokens"]
    assert record["completion_tokens"] == usage["completion_tokens"]
    assert record["latency_us"] > 0
    everything = json.dumps(admin(server, "GET", "/admin/audit", params={"limit": 10000}).json())
    assert created["key"] not in everything
    assert admin(server, "GET", "/admin/audit/verify").json()["ok"] is True


def test_inference_refused_before_a_model_is_chosen_is_audited(server: Server) -> None:
    created = new_key(server)
    request_id = "audit-bad-" + uuid.uuid4().hex
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [], "max_tokens": "3"},
        headers=bearer(created["key"]) | {"x-request-id": request_id},
        timeout=60,
    )
    assert r.status_code == 400
    records = admin(
        server, "GET", "/admin/audit", params={"tenant": created["tenant"], "event": "inference"}
    ).json()["data"]
    (record,) = [x for x in records if x["request_id"] == request_id]
    assert record["actor"] == created["id"]
    assert record["model"] == "-" and record["status"] == 400
    assert record["prompt_tokens"] == 0 and record["completion_tokens"] == 0


def test_auth_failures_are_audited_without_secrets(server: Server) -> None:
    attempt = "gaiops_0123456789ab_" + "S" * 43
    request_id = "fail-" + uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {attempt}", "x-request-id": request_id}
    httpx.get(server.url + "/v1/models", headers=headers, timeout=30)
    records = admin(
        server, "GET", "/admin/audit", params={"event": "auth.failure", "limit": 10000}
    ).json()["data"]
    (record,) = [x for x in records if x["request_id"] == request_id]
    assert record["status"] == 401 and record["detail"]["reason"] == "invalid_api_key"
    assert attempt not in json.dumps(records)


def test_bad_request_ids_are_replaced(server: Server) -> None:
    r = httpx.get(
        server.url + "/v1/models",
        headers=server.headers | {"x-request-id": "bad id\twith spaces"},
        timeout=30,
    )
    assert r.headers["x-request-id"].startswith("req-")


def test_one_json_log_line_per_request(server: Server) -> None:
    request_id = "log-" + uuid.uuid4().hex
    key = new_key(server)
    r = httpx.post(
        server.url + "/generate",
        json={"prompt": "Hi", "max_tokens": 2},
        headers=bearer(key["key"]) | {"x-request-id": request_id},
        timeout=60,
    )
    assert r.status_code == 200
    # The line is written once the response has gone out: wait for it, then for a stray
    # second one.
    deadline = time.monotonic() + 30
    while request_id not in server.log.read_text():
        assert time.monotonic() < deadline, "no access log line"
        time.sleep(0.05)
    time.sleep(0.2)
    lines = [json.loads(x) for x in server.log.read_text().splitlines() if request_id in x]
    assert len(lines) == 1
    line = lines[0]
    assert line["logger"] == "genaiops.access" and line["status"] == 200
    assert line["tenant"] == key["tenant"] and line["actor"] == key["id"]
    assert line["model"] == MODEL and line["latency_ms"] > 0
    assert line["completion_tokens"] == r.json()["usage"]["completion_tokens"]


def test_metrics_need_their_own_token(server: Server) -> None:
    error_of(httpx.get(server.url + "/metrics", timeout=30), 401)
    # An API key, even the administrator's, is not the metrics token.
    error_of(httpx.get(server.url + "/metrics", headers=server.headers, timeout=30), 401)
    r = httpx.get(server.url + "/metrics", headers=bearer(METRICS_TOKEN), timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")


def scrape(server: Server) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", headers=bearer(METRICS_TOKEN), timeout=30).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_count_requests_tokens_rejections_and_failures(server: Server) -> None:
    created = new_key(server, rpm=1)
    tenant = created["tenant"]
    ok = complete(server, created["key"], max_tokens=3).json()["usage"]
    assert complete(server, created["key"]).status_code == 429
    before = scrape(server).get('genaiops_auth_failures_total{reason="missing_api_key"}', 0)
    httpx.get(server.url + "/v1/models", timeout=30)
    after = scrape(server)
    assert after[f'genaiops_requests_total{{model="{MODEL}",status="200",tenant="{tenant}"}}'] == 1
    assert after[f'genaiops_requests_total{{model="{MODEL}",status="429",tenant="{tenant}"}}'] == 1
    key = f'{{model="{MODEL}",tenant="{tenant}"}}'
    assert after["genaiops_completion_tokens_total" + key] == ok["completion_tokens"]
    assert after["genaiops_prompt_tokens_total" + key] == ok["prompt_tokens"]
    limit = f'genaiops_rate_limit_rejections_total{{limit="requests",tenant="{tenant}"}}'
    assert after[limit] == 1
    assert after['genaiops_auth_failures_total{reason="missing_api_key"}'] == before + 1
    assert after[f'genaiops_queue_depth{{model="{MODEL}"}}'] == 0
    # The queue's places alone (not the running slots): depth over capacity is its fill.
    places = admin(server, "GET", "/readyz").json()["models"][MODEL]["queue_size"]
    assert after[f'genaiops_queue_capacity{{model="{MODEL}"}}'] == places > 0
    assert f'genaiops_request_duration_seconds_count{{model="{MODEL}"}}' in after
    assert f'genaiops_time_to_first_token_seconds_count{{model="{MODEL}"}}' in after


def test_inflight_and_queue_gauges_follow_the_work(server: Server) -> None:
    """While one stream generates and a second request waits for the model, the gauges
    say so; once both are over they are back to zero."""
    inflight = f'genaiops_inflight_requests{{model="{MODEL}"}}'
    depth = f'genaiops_queue_depth{{model="{MODEL}"}}'
    long = {"model": MODEL, "prompt": "Once", "max_tokens": 1500, "ignore_eos": True}
    generating, stop = threading.Event(), threading.Event()

    def stream() -> None:
        # Read as it comes (a client that stops reading would stall the stream), until
        # the gauges have been seen; leaving disconnects and cancels the generation.
        with httpx.stream(
            "POST", server.url + "/v1/completions", json=long | {"stream": True},
            headers=server.headers, timeout=120,
        ) as r:  # fmt: skip
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    generating.set()
                if stop.is_set():
                    break

    seen: dict[str, float] = {}
    with ThreadPoolExecutor(2) as pool:
        streaming = pool.submit(stream)
        assert generating.wait(60), "the stream did not start"
        waiting = pool.submit(complete, server, server.key, max_tokens=2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = scrape(server)
            if seen.get(depth, 0) >= 1 and seen.get(inflight, 0) >= 1:
                break
            time.sleep(0.05)
        stop.set()
        streaming.result()
        assert waiting.result().status_code == 200
    assert seen[inflight] == 1 and seen[depth] == 1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = scrape(server)
        if after[inflight] == 0 and after[depth] == 0:
            break
        time.sleep(0.05)
    assert (after[inflight], after[depth]) == (0, 0)


def test_first_start_created_an_owner_only_admin_key(server: Server) -> None:
    path = server.data_dir / "admin_key"
    assert path.stat().st_mode & 0o777 == 0o600
    key = path.read_text().strip()
    assert key == server.key
    # Printed exactly once, at first start.
    assert server.log.read_text().count(key) == 1
    me = admin(server, "GET", "/admin/keys", params={"tenant": "system"}).json()["data"]
    assert [k["role"] for k in me] == ["admin"]


def test_databases_are_readable_by_their_owner_only(server: Server) -> None:
    # Key hashes, the audit log and the tenants' documents: no other local user reads them.
    databases = [server.data_dir / "genaiops.db", *server.data_dir.rglob("rag.db")]
    assert len(databases) >= 2
    for path in databases:
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_auth_can_only_be_disabled_explicitly_and_loudly(tmp_path: Path) -> None:
    server = start_server(
        tmp_path, "open", f'bundled_models = ["{MODEL}"]\n\n[auth]\nenabled = false\n'
    )
    try:
        assert server.key is None  # no administrator key is created
        log = server.log.read_text()
        assert "AUTHENTICATION IS DISABLED" in log
        assert httpx.get(server.url + "/v1/models", timeout=30).status_code == 200
        r = httpx.get(server.url + "/admin/keys", timeout=30)
        assert r.status_code == 200
    finally:
        stop_server(server)
    # Production refuses it outright.
    result = subprocess.run(
        [sys.executable, "-m", "genaiops", "serve"],
        env=os.environ
        | {
            "GENAIOPS_ENV": "production",
            "GENAIOPS_AUTH__ENABLED": "false",
            "GENAIOPS_DATA_DIR": str(tmp_path / "prod"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "auth.enabled = false is refused" in result.stderr


def test_revocation_by_another_process_applies_within_the_cache_ttl(server: Server) -> None:
    created = new_key(server)
    assert complete(server, created["key"]).status_code == 200  # now cached by the server
    genaiops_cli("keys", "revoke", created["id"], data_dir=server.data_dir, config=server.config)
    time.sleep(0.8)  # the test server's auth.key_cache_ttl_s is 0.5
    error_of(complete(server, created["key"]), 401, "revoked_api_key")


# -- admission order and non-generation endpoints ---------------------------------------------


def test_policy_changes_are_audited_under_the_scope_tenant(server: Server) -> None:
    tenant = "polaudit" + uuid.uuid4().hex[:6]
    tenant_admin = new_key(server, tenant=tenant, role="admin")
    user = new_key(server, tenant=tenant, role="user")
    rule = {"stage": "input", "policies": {"toxicity": {"action": "block"}}}
    path = "/admin/guardrails/policies"
    # The system administrator changes a key's and the tenant's policies, then removes them.
    assert admin(server, "PUT", path, json=rule | {"key_id": user["id"]}).status_code == 200
    assert admin(server, "PUT", path, json=rule | {"tenant": tenant}).status_code == 200
    r = admin(server, "DELETE", path, params={"stage": "input", "key_id": user["id"]})
    assert r.status_code == 200, r.text
    r = admin(server, "DELETE", path, params={"stage": "input", "tenant": tenant})
    assert r.status_code == 200, r.text
    records = admin(
        server, "GET", "/admin/audit", headers=bearer(tenant_admin["key"]), params={"limit": 1000}
    ).json()["data"]
    changes = [
        (r["event"], r["detail"]["scope"])
        for r in records
        if r["event"].startswith("guardrail.policy.")
    ]
    assert changes == [
        ("guardrail.policy.updated", f"key:{user['id']}"),
        ("guardrail.policy.updated", f"tenant:{tenant}"),
        ("guardrail.policy.deleted", f"key:{user['id']}"),
        ("guardrail.policy.deleted", f"tenant:{tenant}"),
    ]
    # None of them landed under the system tenant.
    system = admin(
        server, "GET", "/admin/audit", params={"tenant": "system", "limit": 10000}
    ).json()["data"]
    assert not [r for r in system if r["detail"].get("scope", "").endswith(user["id"])]


def test_a_flood_of_bad_keys_cannot_grow_the_audit_log(tmp_path: Path) -> None:
    config = (
        'bundled_models = ["smollm2-135m-instruct"]\n[auth]\naudit_failures_per_minute = 5\n'
        f'[metrics]\ntoken = "{METRICS_TOKEN}"\n'
    )
    server = start_server(tmp_path, "flood", config)
    try:
        victim = new_key(server, role="user")
        wrong = victim["key"][:-4] + "XXXX"
        for _ in range(12):
            error_of(complete(server, wrong), 401, "invalid_api_key")
        for _ in range(8):  # another group: no key named
            error_of(complete(server, "gaiops_0123456789ab_" + "S" * 43), 401)
        records = admin(
            server, "GET", "/admin/audit", params={"event": "auth.failure", "limit": 1000}
        ).json()["data"]
        assert sum(r["detail"].get("key_id") == victim["id"] for r in records) == 5
        assert sum("key_id" not in r["detail"] for r in records) == 5
        counted = scrape(server)['genaiops_auth_failures_total{reason="invalid_api_key"}']
        assert counted >= 20  # /metrics counts every refusal
    finally:
        stop_server(server)
    # The rest of the minute is one record per group, written at the latest at shutdown,
    # in the chain like any record.
    exported = genaiops_cli("audit", "export", "--format", "jsonl", data_dir=server.data_dir)
    summaries = [json.loads(line) for line in exported.stdout.splitlines()]
    summaries = [s for s in summaries if s["event"] == "auth.failure_suppressed"]
    by_key = {s["detail"].get("key_id"): s for s in summaries}
    assert by_key[victim["id"]]["detail"]["count"] == 7
    assert by_key[victim["id"]]["tenant"] == victim["tenant"]
    assert by_key[None]["detail"]["count"] == 3
    assert genaiops_cli("audit", "verify", data_dir=server.data_dir).returncode == 0
