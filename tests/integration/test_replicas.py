"""Two gateway replicas share one Redis for limits and one database (a SQLite file, or
PostgreSQL as in a scaled-out deployment) for keys, usage and the audit chain: a key's
limit holds across them, and the chain stays whole."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, create_key, genaiops_cli, start_server, stop_server

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def replicas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[list[Server]]:
    tmp = tmp_path_factory.mktemp("replicas")
    shared = tmp / "shared-data"
    storage = ""
    if request.param == "postgresql":
        storage = f'\n[storage]\nurl = "{request.getfixturevalue("postgres_url")}"\n'
    config = f"""
bundled_models = ["{MODEL}"]
{storage}
[limits]
backend = "redis"
redis_url = "{redis_url}"
redis_prefix = "replicas-{request.param}"
"""
    servers: list[Server] = []
    try:
        for name in ("replica-a", "replica-b"):
            servers.append(start_server(tmp, name, config, data_dir=shared))
        yield servers
    finally:
        for server in servers:
            stop_server(server)


def complete(server: Server, key: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/completions",
        json={"model": MODEL, "prompt": "Hi", "max_tokens": 1},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def test_request_limit_holds_across_replicas(replicas: list[Server]) -> None:
    data = replicas[0].data_dir
    # Two a minute: one comes back every 30 s, far longer than the six requests take.
    key = create_key(data, "--tenant", "shared", "--rpm", "2", config=replicas[0].config)
    statuses = [complete(replicas[i % 2], key).status_code for i in range(6)]
    # Each replica alone would admit two (four in all); together they admit two.
    assert statuses[:2] == [200, 200]
    assert statuses[2:] == [429, 429, 429, 429]


def test_token_budget_holds_across_replicas(replicas: list[Server]) -> None:
    data = replicas[0].data_dir
    key = create_key(
        data, "--tenant", "budgeted", "--budget-tokens", "12", config=replicas[0].config
    )
    spent = 0
    statuses = []
    for i in range(12):
        r = complete(replicas[i % 2], key)
        statuses.append(r.status_code)
        if r.status_code == 200:
            spent += r.json()["usage"]["total_tokens"]
    # Each request spends about three tokens: a few pass, then both replicas refuse.
    assert statuses.count(200) >= 2
    assert statuses[-4:] == [429] * 4
    # Admission checks the prompt; the reply's tokens can overshoot by one request's worth.
    assert 12 - 3 <= spent <= 12 + 3


def test_audit_chain_is_shared_and_intact(replicas: list[Server]) -> None:
    data = replicas[0].data_dir
    key = create_key(data, "--tenant", "audited", config=replicas[0].config)
    for i in range(10):
        assert complete(replicas[i % 2], key).status_code == 200
    admin = {"Authorization": f"Bearer {replicas[0].key}"}
    # The administrator key was created by whichever replica started first; both accept it.
    for server in replicas:
        r = httpx.get(server.url + "/admin/audit/verify", headers=admin, timeout=60)
        assert r.json()["ok"] is True, r.json()
    result = genaiops_cli("audit", "verify", "--json", data_dir=data, config=replicas[0].config)
    assert json.loads(result.stdout)["ok"] is True
    usage = httpx.get(
        replicas[1].url + "/admin/usage",
        params={"tenant": "audited", "group_by": "tenant"},
        headers=admin,
        timeout=60,
    ).json()["data"]
    assert usage[0]["requests"] == 10


def test_redis_down_is_a_clear_error(tmp_path: Path) -> None:
    """A replica whose Redis is unreachable answers with an OpenAI-shaped 502, not a crash."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    config = f"""
bundled_models = ["{MODEL}"]

[limits]
backend = "redis"
redis_url = "redis://127.0.0.1:{dead_port}/0"
"""
    data = tmp_path / "data"
    key = create_key(data, "--tenant", "acme", "--rpm", "10")
    server = start_server(tmp_path, "no-redis", config, data_dir=data)
    try:
        r = complete(server, key)
        assert r.status_code == 502
        assert "redis" in r.json()["error"]["message"].lower()
        assert server.process.poll() is None
    finally:
        stop_server(server)
