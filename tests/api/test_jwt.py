"""Bearer JWTs from an identity provider (the gateway trusts its JWKS file): valid RS256
and ES256 tokens get in with the tenant and role from their claims; forged, expired,
unsigned and mis-addressed tokens do not."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import JWT_AUDIENCE, JWT_ISSUER, JWTKeys, Server


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": "maria@example.com",
        "tenant": "jwt-tenant",
        "role": "operator",
        "iat": now,
        "exp": now + 300,
    }
    return {k: v for k, v in (base | overrides).items() if v is not None}


def rs256(keys: JWTKeys, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})


def get(server: Server, path: str, token: str) -> httpx.Response:
    return httpx.get(server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def status_and_code(r: httpx.Response) -> tuple[int, str | None]:
    return r.status_code, (r.json().get("error") or {}).get("code")


def test_valid_tokens_get_in_with_claims(server: Server, jwt_keys: JWTKeys) -> None:
    assert get(server, "/v1/models", rs256(jwt_keys)).status_code == 200
    es = jwt.encode(claims(), jwt_keys.ec, algorithm="ES256", headers={"kid": "ec-1"})
    assert get(server, "/v1/models", es).status_code == 200
    # The role claim decides: an operator reads usage but cannot manage keys.
    usage = get(server, "/admin/usage", rs256(jwt_keys))
    assert usage.status_code == 200
    assert {row["tenant"] for row in usage.json()["data"]} <= {"jwt-tenant"}
    assert status_and_code(get(server, "/admin/keys", rs256(jwt_keys))) == (
        403,
        "insufficient_role",
    )
    user = rs256(jwt_keys, role="user")
    assert get(server, "/admin/usage", user).status_code == 403


def test_jwt_inference_is_accounted_to_the_tenant(server: Server, jwt_keys: JWTKeys) -> None:
    token = rs256(jwt_keys, tenant="jwt-billing", sub="svc-42")
    r = httpx.post(
        server.url + "/v1/completions",
        json={"model": "smollm2-135m-instruct", "prompt": "Hi", "max_tokens": 2},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert r.status_code == 200
    rows = httpx.get(
        server.url + "/admin/usage",
        params={"tenant": "jwt-billing", "group_by": "tenant,key_id"},
        headers=server.headers,
        timeout=30,
    ).json()["data"]
    assert rows[0]["key_id"] == "jwt:svc-42" and rows[0]["requests"] == 1


def _unsigned(payload: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def _hs256_with_public_key(keys: JWTKeys) -> str:
    # The classic key-confusion attack: the public key used as an HMAC secret.
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}

    def part(obj: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=")

    import hashlib
    import hmac

    signing_input = part(header) + b"." + part(claims(role="admin", tenant="system"))
    signature = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


@pytest.mark.parametrize(
    ("name", "make", "code"),
    [
        ("expired", lambda k: rs256(k, exp=int(time.time()) - 3600), "expired_jwt"),
        ("no expiry", lambda k: rs256(k, exp=None), "invalid_jwt"),
        ("wrong issuer", lambda k: rs256(k, iss="https://evil.example"), "invalid_jwt"),
        ("wrong audience", lambda k: rs256(k, aud="someone-else"), "invalid_jwt"),
        ("alg none", lambda k: _unsigned(claims(role="admin")), "invalid_jwt"),
        ("hs256 key confusion", _hs256_with_public_key, "invalid_jwt"),
        (
            "forged signature",
            lambda k: jwt.encode(
                claims(role="admin", tenant="system"),
                rsa.generate_private_key(public_exponent=65537, key_size=2048),
                algorithm="RS256",
                headers={"kid": "rsa-1"},
            ),
            "invalid_jwt",
        ),
        (
            "tampered payload",
            lambda k: (
                lambda t: (
                    t.split(".")[0]
                    + "."
                    + _unsigned(claims(role="admin")).split(".")[1]
                    + "."
                    + t.split(".")[2]
                )
            )(rs256(k)),
            "invalid_jwt",
        ),
        (
            "unknown kid",
            lambda k: jwt.encode(claims(), k.rsa, algorithm="RS256", headers={"kid": "x"}),
            "invalid_jwt",
        ),
        ("bad tenant claim", lambda k: rs256(k, tenant="../../etc"), "invalid_jwt"),
        # Validly signed, but naming the installation's own administrators' tenant.
        ("system tenant", lambda k: rs256(k, tenant="system", role="admin"), "invalid_jwt"),
        ("no issuer", lambda k: rs256(k, iss=None), "invalid_jwt"),
        ("no audience", lambda k: rs256(k, aud=None), "invalid_jwt"),
        ("missing tenant", lambda k: rs256(k, tenant=None), "invalid_jwt"),
        ("unknown role", lambda k: rs256(k, role="superuser"), "invalid_jwt"),
        ("garbage", lambda k: "a.b.c", "invalid_jwt"),
    ],
)
def test_bad_tokens_are_401(
    server: Server, jwt_keys: JWTKeys, name: str, make: Any, code: str
) -> None:
    r = get(server, "/admin/keys", make(jwt_keys))
    assert status_and_code(r) == (401, code), (name, r.text)
