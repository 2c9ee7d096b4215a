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
    # Keys tried against /metrics are refused credentials like anywhere else: counted...
    failures = 'genaiops_auth_failures_total{reason="invalid_api_key"}'

    def counted(text: str) -> float:
        line = next((x for x in text.splitlines() if x.startswith(failures)), "")
        return float(line.split()[-1]) if line else 0.0

    before = counted(r.text)
    for guess in ("gaiops_000000000000_guess", "gaiops_111111111111_guess"):
        refused = httpx.get(url, headers={"Authorization": f"Bearer {guess}"}, timeout=30)
        assert refused.status_code == 401
    after = httpx.get(url, headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert counted(after.text) == before + 2
    # ... and audited.
    audit = httpx.get(
        upstream.url + "/admin/audit",
        params={"event": "auth.failure", "limit": 1000},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    ).json()["data"]
    assert sum(1 for e in audit if e["detail"]["path"] == "/metrics") >= 2
