"""SecurityService: authentication, limits, usage and audit for the request pipeline, and
the audited management operations (keys, tenants) behind the admin API and the CLI.

Built once by the composition root (server lifespan) or a CLI command, from Settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genaiops.config import Settings
from genaiops.errors import AuthenticationError, PermissionDenied, RateLimited
from genaiops.security import audit as audit_log
from genaiops.security.audit import AuditEvent
from genaiops.security.keys import KEY_PREFIX, KeyRecord, KeyStore, NewKey, TenantRecord, now_us
from genaiops.security.limits.base import Bucket, Budget, Decision, RateLimiter, create_limiter
from genaiops.security.principal import ANONYMOUS_ADMIN, SYSTEM_TENANT, Limits, Principal
from genaiops.security.recorder import Recorder, UsageDelta
from genaiops.security.refusals import SUPPRESSED, RefusalSampler, Suppressed
from genaiops.security.usage import period_bounds, tokens_used, utc_day
from genaiops.storage.db import Database

if TYPE_CHECKING:
    from genaiops.gateway.context import RequestContext

log = logging.getLogger("genaiops.security")

ADMIN_KEY_FILE = "admin_key"


@dataclass
class Admission:
    """What admitting one request charged, so the rest can be settled when it ends."""

    principal: Principal
    prompt_tokens: int
    token_buckets: list[Bucket] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


def _reset(seconds: float) -> str:
    """OpenAI's reset format: '1s', '6m0s', '20ms'."""
    if seconds < 1:
        return f"{max(1, int(seconds * 1000))}ms"
    minutes, secs = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class SecurityService:
    def __init__(self, settings: Settings, db: Database | None = None):
        self.settings = settings
        self.enabled = settings.auth.enabled
        self.db = db or Database(settings.database_url())
        self.keys = KeyStore(self.db, settings.auth.key_cache_ttl_s)
        self.recorder = Recorder(self.db, settings.storage.flush_interval_s)
        self.refusals = RefusalSampler(settings.auth.audit_failures_per_minute)
        self._limiter: RateLimiter | None = None
        self._jwt: Any = None
        if settings.auth.jwt is not None:
            from genaiops.security.jwt import JWTVerifier

            self._jwt = JWTVerifier(settings.auth.jwt)

    @property
    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            cfg = self.settings.limits
            self._limiter = create_limiter(
                cfg.backend, redis_url=cfg.redis_url, prefix=cfg.redis_prefix
            )
        return self._limiter

    def start(self) -> None:
        self.db.migrate()
        self.recorder.start()
        restored, self.db.head_restored = self.db.head_restored, None
        if restored == 0:
            # Tampering evidence that stays in the chain: verify reports it.
            log.error("the audit log and its head were missing although API keys exist")
            self.record_event(audit_log.LOG_RESTARTED, durable=True)
        elif restored is not None:
            log.error("the audit head row was missing; restored from record %d", restored)
            self.record_event(
                audit_log.HEAD_RESTORED, detail={"restored_from_seq": restored}, durable=True
            )

    async def close(self) -> None:
        if self._limiter is not None:
            await self._limiter.close()
        for suppressed in self.refusals.drain():
            self._record_suppressed(suppressed)
        await asyncio.to_thread(self.recorder.close)
        self.db.close()

    # -- authentication --------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS_ADMIN
        if not authorization:
            raise AuthenticationError(
                "Missing credentials: send 'Authorization: Bearer <API key or token>'.",
                code="missing_api_key",
            )
        if len(authorization) > self.settings.auth.max_header_bytes:
            raise AuthenticationError("The Authorization header is too long.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("Use the Bearer scheme: 'Authorization: Bearer <key>'.")
        if token.startswith(KEY_PREFIX) or self._jwt is None or token.count(".") != 2:
            return await self._key_principal(token)
        principal: Principal = self._jwt.verify(token)
        return principal

    async def _key_principal(self, token: str) -> Principal:
        key_id = KeyStore.key_id_of(token)
        record: KeyRecord | None = None
        if key_id is not None:
            hit, record = self.keys.cached(key_id)
            if not hit:
                record = await asyncio.to_thread(self.keys.load, key_id)
        # Always one constant-time comparison, found or not.
        if not KeyStore.matches(record, token) or record is None:
            refused = AuthenticationError("Incorrect API key provided.")
            if record is not None:  # a real key id with a wrong secret: its tenant is told
                refused.key_id, refused.tenant = record.id, record.tenant
            raise refused
        status = record.status()
        if status != "active":
            refused = AuthenticationError(f"This API key is {status}.", code=f"{status}_api_key")
            refused.key_id, refused.tenant = record.id, record.tenant
            raise refused
        return Principal(
            tenant=record.tenant,
            role=record.role,
            actor=record.id,
            via="api_key",
            models=record.models,
            limits=record.limits,
            lineage=record.lineage,
        )

    # -- limits ----------------------------------------------------------------------------

    async def _tenant_limits(self, tenant: str) -> Limits:
        hit, record = self.keys.cached_tenant(tenant)
        if not hit:
            record = await asyncio.to_thread(self.keys.tenant, tenant)
        return record.limits if record is not None else Limits()

    @staticmethod
    def _budget_scopes(
        principal: Principal, tenant_limits: Limits
    ) -> list[tuple[str, str, int, str, int]]:
        """(counter key, key id or "" for the tenant's, limit, first day, ttl) per budget."""
        out = []
        for scope, ident, limits in (
            ("key", principal.limits_id, principal.limits),
            ("tenant", principal.tenant, tenant_limits),
        ):
            if limits.budget_tokens is None:
                continue
            start, ttl = period_bounds(limits.budget_period)
            key = f"budget:{scope}:{ident}:{limits.budget_period}:{start}"
            out.append((key, ident if scope == "key" else "", limits.budget_tokens, start, ttl))
        return out

    def _budgets(self, principal: Principal, tenant_limits: Limits, cost: int) -> list[Budget]:
        return [
            Budget(key, limit, cost, ttl, seeded=True)
            for key, _, limit, _, ttl in self._budget_scopes(principal, tenant_limits)
        ]

    async def _seed(
        self, principal: Principal, tenant_limits: Limits, missing: tuple[str, ...]
    ) -> None:
        """Start the budget counters the limiter does not have (first use of a period in
        this process, or a Redis that lost them) at what the usage table says was spent."""
        for key, key_id, _, start, ttl in self._budget_scopes(principal, tenant_limits):
            if key in missing:
                used = await asyncio.to_thread(
                    tokens_used,
                    self.db,
                    since_day=start,
                    tenant=principal.tenant,
                    key_ids=(principal.lineage or (key_id,)) if key_id else None,
                )
                await self.limiter.seed_budget(key, used, ttl)

    async def admit(self, principal: Principal, prompt_tokens: int) -> Admission:
        """Charge one request and its prompt tokens, or raise RateLimited (429).

        With ``prompt_tokens`` 0 (a request that uses no model tokens) only the request
        rates apply.
        """
        admission = Admission(principal, prompt_tokens)
        if principal.via == "disabled":
            return admission
        tenant_limits = await self._tenant_limits(principal.tenant)
        request_buckets: list[Bucket] = []
        for scope, ident, limits in (
            ("key", principal.limits_id, principal.limits),
            ("tenant", principal.tenant, tenant_limits),
        ):
            if limits.rpm is not None:
                request_buckets.append(
                    Bucket(f"rpm:{scope}:{ident}", limits.rpm, limits.rpm / 60, 1, "requests")
                )
            if limits.tpm is not None and prompt_tokens > 0:
                # A prompt larger than the bucket is refused by it (with the bucket's
                # headers) and reported as too large below.
                admission.token_buckets.append(
                    Bucket(
                        f"tpm:{scope}:{ident}", limits.tpm, limits.tpm / 60, prompt_tokens, "tokens"
                    )
                )
        if prompt_tokens > 0:
            admission.budgets = self._budgets(principal, tenant_limits, prompt_tokens)
        buckets = request_buckets + admission.token_buckets
        if not buckets and not admission.budgets:
            return admission
        decision = await self._acquire(principal, buckets, admission.budgets, tenant_limits)
        admission.headers = self._headers(buckets, admission.budgets, decision.remaining)
        if not decision.allowed:
            raise self._refusal(decision, buckets, prompt_tokens, admission.headers)
        return admission

    async def _acquire(
        self,
        principal: Principal,
        buckets: list[Bucket],
        budgets: list[Budget],
        tenant_limits: Limits | None = None,
    ) -> Decision:
        """The limiter's decision, after starting the budget counters it lacked (first use
        of a period in this process, a counter that expired, a Redis that lost it) from
        the usage table."""
        decision = await self.limiter.acquire(buckets, budgets)
        if decision.unseeded:
            if tenant_limits is None:
                tenant_limits = await self._tenant_limits(principal.tenant)
            await self._seed(principal, tenant_limits, decision.unseeded)
            decision = await self.limiter.acquire(buckets, budgets)
        return decision

    @staticmethod
    def _recharge(admission: Admission, extra: int) -> tuple[list[Bucket], list[Budget]]:
        """The admission's token buckets and budgets, charged ``extra`` tokens more (or,
        negative, given back)."""
        buckets = [
            Bucket(b.key, b.capacity, b.rate, extra, b.unit) for b in admission.token_buckets
        ]
        budgets = [Budget(b.key, b.limit, extra, b.ttl_s, b.seeded) for b in admission.budgets]
        return buckets, budgets

    async def admit_request(self, ctx: RequestContext, prompt_tokens: int) -> Admission | None:
        """``admit`` for an HTTP request: the rate headers go to its response, a refusal is
        noted for the record stage. None when the request has no principal."""
        if ctx.principal is None:
            return None
        try:
            admission = await self.admit(ctx.principal, prompt_tokens)
        except RateLimited as exc:
            ctx.rate_limited = exc.code
            ctx.headers.update(exc.headers)
            raise
        ctx.headers.update(admission.headers)
        return admission

    @contextlib.asynccontextmanager
    async def admitted(self, ctx: RequestContext, tokens: int) -> AsyncIterator[None]:
        """Admit a request that is not a generation (embeddings, search, checks) around its
        work: ``tokens`` are known up front, charged, and recorded once the work is done; a
        failure gives them back (the request still counts)."""
        admission = await self.admit_request(ctx, tokens)
        try:
            yield
        except BaseException:
            if admission is not None:
                await self.refund(admission)
            raise
        ctx.prompt_tokens = tokens

    async def refund(self, admission: Admission) -> None:
        """Settle a request that ended before any work was done: it counts as a request,
        its tokens are given back. Never raises (``settle`` logs what the limiter lost)."""
        await self.settle(admission, 0, 0)

    async def fit_prompt(
        self, ctx: RequestContext, admission: Admission, prompt_tokens: int
    ) -> None:
        """Charge the prompt's real size, known once it is tokenised (chat template
        included), before the model starts: the admission charged an estimate from the
        text, and what the estimate missed is charged now, so concurrent requests cannot
        run past a tokens-per-minute limit or a budget on estimates. Refuses (429) a prompt
        larger than a limit, or one the limits have no room for now; the caller then
        refunds the admission."""
        for bucket in admission.token_buckets:
            if prompt_tokens > bucket.capacity:
                ctx.rate_limited = "tokens_exceeded"
                raise self._too_large(bucket, prompt_tokens, admission.headers)
        extra = prompt_tokens - admission.prompt_tokens
        if extra <= 0 or not (admission.token_buckets or admission.budgets):
            return  # an overestimate is corrected when the request is settled
        buckets, budgets = self._recharge(admission, extra)
        decision = await self._acquire(admission.principal, buckets, budgets)
        headers = self._headers(buckets, budgets, decision.remaining)
        ctx.headers.update(headers)
        if not decision.allowed:
            refusal = self._refusal(decision, buckets, prompt_tokens, headers)
            ctx.rate_limited = refusal.code
            raise refusal
        admission.prompt_tokens = prompt_tokens

    @staticmethod
    def _too_large(bucket: Bucket, prompt_tokens: int, headers: dict[str, str]) -> RateLimited:
        scope = bucket.key.split(":")[1]
        return RateLimited(
            f"The prompt has {prompt_tokens} tokens, more than the {scope}'s limit "
            f"of {int(bucket.capacity)} tokens per minute.",
            retry_after=60,
            code="tokens_exceeded",
            headers=headers,
        )

    def _refusal(
        self,
        decision: Decision,
        buckets: list[Bucket],
        prompt_tokens: int,
        headers: dict[str, str],
    ) -> RateLimited:
        refused = decision.refused_by or ""
        for bucket in buckets:
            if bucket.key == refused and bucket.unit == "tokens" and bucket.cost > bucket.capacity:
                return self._too_large(bucket, prompt_tokens, headers)
        kind = refused.split(":", 1)[0]
        scope = refused.split(":")[1] if refused.count(":") >= 1 else "key"
        code, what = {
            "rpm": ("requests_exceeded", "requests per minute"),
            "tpm": ("tokens_exceeded", "tokens per minute"),
            "budget": ("budget_exceeded", "token budget"),
        }.get(kind, ("rate_limit_exceeded", "rate limit"))
        retry = max(1, math.ceil(decision.retry_after_s))
        return RateLimited(
            f"Rate limit reached for this {scope}: {what}. Retry after {retry} s.",
            retry_after=retry,
            code=code,
            headers=headers,
        )

    def _headers(
        self, buckets: list[Bucket], budgets: list[Budget], remaining: dict[str, float]
    ) -> dict[str, str]:
        # (limit, left, seconds until full) per unit; budgets count as tokens and are full
        # again when their period ends. A refusal reports only what refused.
        found: dict[str, list[tuple[float, float, float]]] = {"requests": [], "tokens": []}
        for b in buckets:
            if b.key in remaining:
                left = remaining[b.key]
                found[b.unit].append((b.capacity, left, max(0.0, b.capacity - left) / b.rate))
        for g in budgets:
            if g.key in remaining:
                found["tokens"].append((float(g.limit), remaining[g.key], float(g.ttl_s)))
        headers: dict[str, str] = {}
        for unit, options in found.items():
            if not options:
                continue
            # Report the tightest of the key's and the tenant's limits.
            limit, left, reset = min(options, key=lambda o: o[1] / o[0])
            headers[f"x-ratelimit-limit-{unit}"] = str(int(limit))
            headers[f"x-ratelimit-remaining-{unit}"] = str(max(0, int(left)))
            headers[f"x-ratelimit-reset-{unit}"] = _reset(reset)
        return headers

    async def settle(
        self, admission: Admission, prompt_tokens: int, completion_tokens: int
    ) -> None:
        """Charge completion tokens and correct the prompt estimate, once.

        The prompt tokens are what the model was given: 0 for a request that ended before
        reaching it (blocked, refused by the queue, failed), which gives its estimate back.
        """
        if admission.settled:
            return
        admission.settled = True
        extra = completion_tokens + prompt_tokens - admission.prompt_tokens
        if extra == 0 or not (admission.token_buckets or admission.budgets):
            return
        try:
            await self.limiter.settle(*self._recharge(admission, extra))
        except Exception as exc:  # the answer is out: a charge lost is logged, not an error
            log.warning("limits: %d tokens not settled: %s", extra, exc)

    # -- recording -------------------------------------------------------------------------

    def record_inference(
        self,
        principal: Principal,
        *,
        model: str,
        status: int,
        request_id: str,
        latency_s: float,
        prompt_tokens: int,
        completion_tokens: int,
        detail: dict[str, Any] | None = None,
    ) -> None:
        for suppressed in self.refusals.expired():
            self._record_suppressed(suppressed)
        stamp = now_us()
        self.recorder.usage(
            UsageDelta(
                day=utc_day(stamp / 1e6),
                tenant=principal.tenant,
                key_id=principal.actor,
                model=model,
                errors=0 if status < 400 else 1,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        )
        self.recorder.audit(
            AuditEvent(
                event="inference",
                ts_us=stamp,
                tenant=principal.tenant,
                actor=principal.actor,
                request_id=request_id,
                model=model,
                status=status,
                latency_us=int(latency_s * 1e6),
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                detail=detail or {},
            )
        )

    def record_refusal(
        self,
        exc: AuthenticationError,
        *,
        client: str | None,
        path: str,
        request_id: str | None = None,
    ) -> None:
        """Audit a refused credential, filed under the tenant of the key it names (that
        tenant's operators see attempts on their own keys), within the sampler's budget."""
        reason = exc.code or "invalid"
        own, closed = self.refusals.admit((client, reason, exc.key_id), exc.tenant, path)
        for suppressed in closed:
            self._record_suppressed(suppressed)
        if not own:
            return
        detail: dict[str, Any] = {"reason": exc.code, "path": path, "client": client}
        if exc.key_id is not None:
            detail["key_id"] = exc.key_id
        self.record_event(
            "auth.failure", tenant=exc.tenant, status=401, request_id=request_id, detail=detail
        )

    def _record_suppressed(self, suppressed: Suppressed) -> None:
        self.record_event(
            SUPPRESSED, tenant=suppressed.tenant, status=401, detail=suppressed.detail()
        )

    def record_event(
        self,
        event: str,
        *,
        principal: Principal | None = None,
        tenant: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        detail: dict[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        """A security-relevant event; ``durable`` waits until it is written (blocking)."""
        item = AuditEvent(
            event=event,
            ts_us=now_us(),
            tenant=tenant if tenant is not None else (principal.tenant if principal else None),
            actor=principal.actor if principal else None,
            request_id=request_id,
            status=status,
            detail=detail or {},
        )
        if durable:
            self.recorder.audit_now(item)
        else:
            self.recorder.audit(item)

    # -- management (audited; blocking, call from a thread in async code) -----------------

    def create_key(self, actor: Principal, **kwargs: Any) -> NewKey:
        # A tenant administrator can only create keys in its own tenant. Only a tenant
        # left out means the caller's: an empty one is refused, never read as "system".
        named = kwargs.get("tenant")
        tenant = actor.scope(actor.tenant if named is None else named)
        kwargs["tenant"] = tenant
        new = self.keys.create(created_by=actor.actor, **kwargs)
        self._key_created(actor, new)
        return new

    def _key_created(self, actor: Principal, new: NewKey) -> None:
        self.record_event(
            "key.created",
            principal=actor,
            tenant=new.record.tenant,
            detail={"key_id": new.record.id, "role": new.record.role, "name": new.record.name},
            durable=True,
        )

    def revoke_key(self, actor: Principal, key_id: str) -> KeyRecord:
        record = self.keys.revoke(key_id, actor.scope(None))
        self.record_event(
            "key.revoked",
            principal=actor,
            tenant=record.tenant,
            detail={"key_id": key_id},
            durable=True,
        )
        return record

    def rotate_key(self, actor: Principal, key_id: str) -> tuple[NewKey, KeyRecord]:
        new, old = self.keys.rotate(key_id, actor.scope(None), created_by=actor.actor)
        self.record_event(
            "key.rotated",
            principal=actor,
            tenant=old.tenant,
            detail={"key_id": key_id, "new_key_id": new.record.id},
            durable=True,
        )
        return new, old

    def set_tenant(self, actor: Principal, name: str, limits: Limits) -> TenantRecord:
        if not actor.is_system_admin:
            actor.scope(name)
            raise PermissionDenied(
                "Only the system administrator can change tenant limits.", code="insufficient_role"
            )
        record = self.keys.set_tenant(name, limits)
        self.record_event(
            "tenant.updated", principal=actor, tenant=name, detail=record.public(), durable=True
        )
        return record

    def bootstrap_admin(self) -> str | None:
        """On an installation with no keys, create the system administrator's key.

        Returns the secret (to be shown once) and writes it to <data_dir>/admin_key with
        owner-only permissions; returns None when keys already exist.
        """
        if not self.enabled or self.keys.has_keys():
            return None
        # Replicas starting together on one empty database: one of them creates the key.
        new = self.keys.create_first(
            tenant=SYSTEM_TENANT, role="admin", name="bootstrap admin", created_by="bootstrap"
        )
        if new is None:
            return None
        system = Principal(tenant=SYSTEM_TENANT, role="admin", actor="bootstrap", via="disabled")
        self._key_created(system, new)
        path = admin_key_path(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new.secret + "\n")
        os.chmod(path, 0o600)
        return new.secret

    def record_start(self, models: list[str], detail: dict[str, Any]) -> None:
        """Audit a server start, and any change in the served models since the last one."""
        previous = audit_log.latest(self.db, "server.started")
        if previous is not None:
            before = set(previous["detail"].get("models", []))
            added, removed = sorted(set(models) - before), sorted(before - set(models))
            if added or removed:
                self.record_event("models.changed", detail={"added": added, "removed": removed})
        self.record_event("server.started", detail=detail | {"models": models}, durable=True)

    def verify_audit(self, anchors: Sequence[tuple[int, str]] = ()) -> audit_log.Verification:
        self.recorder.flush()
        return audit_log.verify(self.db, anchors=anchors)


def admin_key_path(settings: Settings) -> Path:
    return settings.data_dir / ADMIN_KEY_FILE
