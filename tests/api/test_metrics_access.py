"""Who may read /metrics on a server without a metrics token: its series name every tenant
and their traffic, so only the installation's administrator."""

from __future__ import annotations

import httpx

from tests.conftest import Server, create_key


def test_metrics_without_a_token_need_the_system_administrator(upstream: Server) -> None:
    url = upstream.url + "/metrics"
    anonymous = httpx.get(url, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "missing_api_key"
    # A tenant's key (here a user key, then the tenant's own administrator) is refused.
    user = {"Authorization": f"Bearer {upstream.key}"}
    forbidden = httpx.get(url, headers=user, timeout=30)
    assert forbidden.status_code == 403
    assert "system administrator" in forbidden.json()["error"]["message"]
    tenant_admin = create_key(upstream.data_dir, "--tenant", "gateway", "--role", "admin")
    r = httpx.get(url, headers={"Authorization": f"Bearer {tenant_admin}"}, timeout=30)
    assert r.status_code == 403
    admin = create_key(upstream.data_dir, "--tenant", "system", "--role", "admin")
    r = httpx.get(url, headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "genaiops_requests_total" in r.text
