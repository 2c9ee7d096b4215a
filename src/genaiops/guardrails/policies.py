"""Guardrail policies per tenant, API key and model, on top of ``[guardrails]`` in the
configuration.

Overrides are stored in the metadata database (so every replica sees them) for one stage
each, as ``{guard: GuardPolicy}``. The effective policy of a request is the configured one,
then the model's override, then the tenant's, then the key's: the more specific scope
replaces a guard's whole entry, and ``{"enabled": false}`` switches a guard off. Resolved
policies are cached for ``auth.key_cache_ttl_s`` like keys; changes through this process
apply at once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select

from genaiops.config import GuardPolicy, GuardrailsSettings
from genaiops.errors import InvalidRequest
from genaiops.security.keys import now_us, remember
from genaiops.security.principal import Principal
from genaiops.storage.db import Database
from genaiops.storage.tables import guardrail_policies

# Scopes whose policies are kept in memory: one per key (or JWT subject) that made a
# request recently, besides tenants and models.
_MAX_CACHED = 20_000

STAGES = ("input", "context", "output")
Policies = dict[str, GuardPolicy]


def parse(raw: Any) -> Policies:
    if not isinstance(raw, dict):
        raise InvalidRequest("policies must be an object of guard -> policy", param="policies")
    try:
        return {str(name): GuardPolicy.model_validate(p) for name, p in raw.items()}
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidRequest(
            f"invalid policy at {'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
            param="policies",
        ) from None


def scope_of(tenant: str | None = None, key: str | None = None, model: str | None = None) -> str:
    given = [(k, v) for k, v in (("tenant", tenant), ("key", key), ("model", model)) if v]
    if len(given) != 1:
        raise InvalidRequest("give exactly one of tenant, key or model", param="scope")
    kind, value = given[0]
    return f"{kind}:{value}"


class PolicyStore:
    def __init__(
        self,
        db: Database,
        settings: GuardrailsSettings,
        cache_ttl_s: float = 5.0,
        production: bool = False,
    ):
        self.db = db
        self.settings = settings
        self.cache_ttl_s = cache_ttl_s
        self._lock = threading.Lock()
        # In production a hashing policy needs the installation's hash key, as the
        # configuration does (hashes of a per-process key cannot be joined later).
        self.production = production
        self._cache: OrderedDict[tuple[str, str], tuple[float, Policies | None]] = OrderedDict()
        self._epoch = 0  # bumped by every change (see ``_forget``)

    def put(self, scope: str, stage: str, policies: Policies, actor: str | None) -> None:
        if stage not in STAGES:
            raise InvalidRequest(f"stage must be one of {STAGES}", param="stage")
        key_env = self.settings.pii_hash_key_env
        hashing = [name for name, p in policies.items() if p.mode == "hash"]
        if hashing and self.production and not os.environ.get(key_env):
            raise InvalidRequest(
                f"mode 'hash' ({hashing[0]}) needs {key_env} set on the server in production",
                param="policies",
            )
        values = {
            "scope": scope,
            "stage": stage,
            "policies": json.dumps({k: v.model_dump() for k, v in policies.items()}),
            "updated_us": now_us(),
            "updated_by": actor,
        }
        # One statement: two administrators (or replicas) setting one scope's policy at
        # once both succeed, the later write wins.
        stmt: Any = self.db.upsert(guardrail_policies).values(**values)
        with self.db.begin() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["scope", "stage"],
                    set_={c: stmt.excluded[c] for c in ("policies", "updated_us", "updated_by")},
                )
            )
        self._forget()

    def remove(self, scope: str, stage: str) -> bool:
        with self.db.begin() as conn:
            result = conn.execute(
                delete(guardrail_policies).where(
                    guardrail_policies.c.scope == scope, guardrail_policies.c.stage == stage
                )
            )
        self._forget()
        return bool(result.rowcount)

    def list(self, prefixes: list[str] | None = None) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(guardrail_policies).order_by(
                    guardrail_policies.c.scope, guardrail_policies.c.stage
                )
            ).all()
        out = []
        for row in rows:
            if prefixes is not None and not any(row.scope == p for p in prefixes):
                continue
            out.append(
                {
                    "scope": row.scope,
                    "stage": row.stage,
                    "policies": json.loads(row.policies),
                    "updated_at": row.updated_us // 1_000_000,
                    "updated_by": row.updated_by,
                }
            )
        return out

    def _forget(self) -> None:
        """Drop what is cached after a change; a read that began before it stores nothing."""
        with self._lock:
            self._epoch += 1
            self._cache.clear()

    def _load(self, scope: str, stage: str) -> Policies | None:
        cached = self._cache.get((scope, stage))
        if cached is not None and time.monotonic() - cached[0] <= self.cache_ttl_s:
            return cached[1]
        epoch = self._epoch
        with self.db.connect() as conn:
            row = conn.execute(
                select(guardrail_policies.c.policies).where(
                    guardrail_policies.c.scope == scope, guardrail_policies.c.stage == stage
                )
            ).first()
        policies = parse(json.loads(row.policies)) if row is not None else None
        # One entry per key (and per JWT subject) that made a request: least recently
        # read ones go first past the bound.
        with self._lock:
            if epoch == self._epoch:
                remember(self._cache, (scope, stage), policies, _MAX_CACHED)
        return policies

    def resolve(self, stage: str, principal: Principal | None, model: str | None) -> Policies:
        effective: Policies = dict(getattr(self.settings, stage))
        scopes = []
        if model:
            scopes.append(f"model:{model}")
        if principal is not None:
            scopes.append(f"tenant:{principal.tenant}")
            scopes.append(f"key:{principal.actor}")
        for scope in scopes:
            override = self._load(scope, stage)
            if override:
                effective.update(override)
        return {name: p for name, p in effective.items() if p.enabled}
