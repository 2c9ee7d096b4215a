"""Bearer JWTs (OIDC-style) as a second way in, verified offline.

Only asymmetric algorithms from ``auth.jwt.algorithms`` are accepted, so an unsigned
(``alg: none``) token or one signed with the public key as an HMAC secret is refused by
construction. Issuer, audience and expiry are required and checked; the tenant and role
come from configurable claims, and the reserved ``system`` tenant (the installation's
administrators) is refused unless ``allow_system_tenant`` says otherwise. Keys come from
a PEM file or a JWKS document on disk (air-gapped sites copy their provider's JWKS); a
JWKS is matched by ``kid``, and entries that are not signing keys are skipped.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
from jwt import PyJWK

from genaiops.config import JWTSettings
from genaiops.errors import AuthenticationError, ConfigError
from genaiops.security.keys import _TENANT_RE
from genaiops.security.principal import ROLES, Principal


class JWTVerifier:
    def __init__(self, settings: JWTSettings):
        self.settings = settings
        self._pem: Any = None
        self._jwks: dict[str | None, PyJWK] = {}
        try:
            if settings.public_key_file is not None:
                self._pem = settings.public_key_file.read_bytes()
            elif settings.jwks_file is not None:
                document = json.loads(settings.jwks_file.read_text(encoding="utf-8"))
                for entry in document.get("keys", []):
                    # Providers publish encryption keys and algorithms this build cannot
                    # load next to their signing keys: those entries are skipped.
                    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                        continue
                    try:
                        key = PyJWK.from_dict(entry)
                    except jwt.PyJWTError:
                        continue
                    self._jwks[entry.get("kid")] = key
                if not self._jwks:
                    raise ConfigError(
                        f"auth.jwt.jwks_file {settings.jwks_file} has no usable signing keys"
                    )
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise ConfigError(f"auth.jwt: cannot load the verification key: {exc}") from exc

    def _key(self, token: str) -> Any:
        if self._pem is not None:
            return self._pem
        kid = jwt.get_unverified_header(token).get("kid")
        key = self._jwks.get(kid)
        if key is None and kid is None and len(self._jwks) == 1:
            key = next(iter(self._jwks.values()))
        if key is None:
            raise AuthenticationError("The token's signing key is not trusted.", code="invalid_jwt")
        return key

    def verify(self, token: str) -> Principal:
        cfg = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self._key(token),
                algorithms=list(cfg.algorithms),
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("The token has expired.", code="expired_jwt") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"Invalid token: {exc}.", code="invalid_jwt") from None
        tenant = claims.get(cfg.tenant_claim)
        if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
            raise AuthenticationError(
                f"The token has no valid '{cfg.tenant_claim}' claim.", code="invalid_jwt"
            )
        if tenant == "system" and not cfg.allow_system_tenant:
            raise AuthenticationError(
                "Tokens cannot act for the reserved 'system' tenant "
                "(auth.jwt.allow_system_tenant).",
                code="invalid_jwt",
            )
        role = claims.get(cfg.role_claim, cfg.default_role)
        if role not in ROLES:
            raise AuthenticationError(
                f"The token has no valid '{cfg.role_claim}' claim.", code="invalid_jwt"
            )
        subject = str(claims.get("sub") or "unknown")[:80]
        return Principal(tenant=tenant, role=role, actor=f"jwt:{subject}", via="jwt")
