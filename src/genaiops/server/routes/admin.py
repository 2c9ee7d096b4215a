"""/admin: API keys, tenants, usage and the audit log.

Every route is scoped by the caller's tenant (Principal.scope): tenant administrators and
operators only ever see their own tenant; the system administrator may name any tenant or
none (all). A key of another tenant is 'not found', not 'forbidden', so ids cannot be
probed. The handlers are plain functions, so FastAPI runs their database work in its
thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from genaiops.errors import InvalidRequest, NotFound, PermissionDenied
from genaiops.guardrails import policies
from genaiops.security import audit, usage
from genaiops.security.keys import KeyRecord, NewKey, parse_duration
from genaiops.security.principal import Limits
from genaiops.server.deps import (
    GuardrailsDep,
    KeysAdminDep,
    LogsReaderDep,
    SecurityDep,
    TenantQuery,
    UsageReaderDep,
)
from genaiops.server.protocol import (
    ErrorResponse,
    KeyCreate,
    KeyList,
    KeyOut,
    LimitsIn,
    PolicyScope,
    PolicyUpdate,
    TenantList,
    TenantOut,
)
from genaiops.server.requests import JSONRoute

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404)
}
router = APIRouter(route_class=JSONRoute, prefix="/admin", tags=["admin"], responses=ERRORS)


def _key_out(record: KeyRecord, secret: str | None = None) -> KeyOut:
    return KeyOut(**record.public(), key=secret)


def _new_key_out(new: NewKey) -> KeyOut:
    return _key_out(new.record, new.secret)


@router.get("/keys", response_model=KeyList)
def list_keys(
    principal: KeysAdminDep,
    security: SecurityDep,
    tenant: TenantQuery = None,
    include_revoked: bool = False,
) -> KeyList:
    records = security.keys.all(principal.scope(tenant), include_revoked=include_revoked)
    return KeyList(data=[_key_out(r) for r in records])


@router.post("/keys", response_model=KeyOut, status_code=201)
def create_key(body: KeyCreate, principal: KeysAdminDep, security: SecurityDep) -> KeyOut:
    new = security.create_key(
        principal,
        tenant=body.tenant,
        role=body.role,
        name=body.name,
        limits=Limits(body.rpm, body.tpm, body.budget_tokens, body.budget_period),
        models=body.models,
        expires_in_s=None if body.expires is None else parse_duration(body.expires),
    )
    return _new_key_out(new)


@router.get("/keys/{key_id}", response_model=KeyOut)
def get_key(key_id: str, principal: KeysAdminDep, security: SecurityDep) -> KeyOut:
    return _key_out(security.keys.get(key_id, principal.scope(None)))


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: str, principal: KeysAdminDep, security: SecurityDep) -> KeyOut:
    return _key_out(security.revoke_key(principal, key_id))


@router.post("/keys/{key_id}/rotate", response_model=KeyOut, status_code=201)
def rotate_key(key_id: str, principal: KeysAdminDep, security: SecurityDep) -> KeyOut:
    new, _ = security.rotate_key(principal, key_id)
    return _new_key_out(new)


@router.get("/tenants", response_model=TenantList)
def list_tenants(
    principal: KeysAdminDep, security: SecurityDep, tenant: TenantQuery = None
) -> TenantList:
    records = security.keys.tenants(principal.scope(tenant))
    return TenantList(data=[TenantOut(**r.public()) for r in records])


@router.put("/tenants/{name}", response_model=TenantOut)
def set_tenant(
    name: str, body: LimitsIn, principal: KeysAdminDep, security: SecurityDep
) -> TenantOut:
    record = security.set_tenant(
        principal, name, Limits(body.rpm, body.tpm, body.budget_tokens, body.budget_period)
    )
    return TenantOut(**record.public())


@router.get("/usage")
def get_usage(
    principal: UsageReaderDep,
    security: SecurityDep,
    tenant: TenantQuery = None,
    since: str | None = None,
    until: str | None = None,
    group_by: Annotated[str, Query(description="Comma-separated: day,tenant,key_id,model")] = (
        "day,tenant,model"
    ),
    key_id: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    security.recorder.flush()
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    rows = usage.query(
        security.db,
        tenant=principal.scope(tenant),
        since=since,
        until=until,
        group_by=groups,
        key_id=key_id,
        model=model,
    )
    return {"object": "list", "group_by": groups, "data": rows}


@router.get("/audit")
def get_audit(
    principal: LogsReaderDep,
    security: SecurityDep,
    tenant: TenantQuery = None,
    since: str | None = None,
    until: str | None = None,
    event: str | None = None,
    after_seq: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    security.recorder.flush()
    records = list(
        audit.query(
            security.db,
            tenant=principal.scope(tenant),
            since_us=audit.parse_instant(since, "since") if since else None,
            until_us=audit.parse_instant(until, "until") if until else None,
            event=event,
            after_seq=after_seq,
            limit=limit,
        )
    )
    return {"object": "list", "data": records, "has_more": len(records) == limit}


@router.get("/audit/verify")
def verify_audit(
    principal: LogsReaderDep,
    security: SecurityDep,
    response: Response,
    anchor: Annotated[
        list[str] | None,
        Query(description="SEQ:HASH of a record kept outside the database; repeatable."),
    ] = None,
) -> Any:
    if not principal.is_system_admin:
        raise PermissionDenied(
            "Only the system administrator can verify the whole audit chain.",
            code="insufficient_role",
        )
    result = security.verify_audit([audit.parse_anchor(a) for a in anchor or []])
    if not result.ok:
        response.status_code = 409
    return result.as_dict()


@router.delete("/audit")
def prune_audit(
    principal: LogsReaderDep,
    security: SecurityDep,
    before: Annotated[
        str, Query(description="Delete records older than this: date, ISO date-time, epoch s.")
    ],
) -> dict[str, Any]:
    """Apply a retention limit: records older than ``before`` are deleted, and an
    ``audit.pruned`` record keeps the chain verifiable from the first one left."""
    if not principal.is_system_admin:
        raise PermissionDenied(
            "Only the system administrator can prune the audit log.", code="insufficient_role"
        )
    before_us = audit.parse_instant(before, "before")
    security.recorder.flush()
    return audit.prune(security.db, before_us, actor=principal.actor)


# -- guardrail policies ----------------------------------------------------------------------


def _policy_scope(principal: Any, security: Any, body: PolicyScope) -> tuple[str, str]:
    """The policy scope, and the tenant whose audit log records changes to it."""
    if body.model is not None:
        if not principal.is_system_admin:
            raise PermissionDenied(
                "Only the system administrator can set policies for a model.",
                code="insufficient_role",
            )
        return policies.scope_of(model=body.model), principal.tenant
    if body.key_id is not None:
        # A key of another tenant is "not found", as everywhere in /admin.
        record = security.keys.get(body.key_id, principal.scope(None))
        return policies.scope_of(key=body.key_id), record.tenant
    tenant = principal.scope(body.tenant) or principal.tenant
    return policies.scope_of(tenant=tenant), tenant


def _store(guardrails: Any) -> policies.PolicyStore:
    if guardrails.store is None:
        raise InvalidRequest("Guardrail policy overrides are not available.")
    store: policies.PolicyStore = guardrails.store
    return store


@router.get("/guardrails/policies")
def list_policies(
    principal: KeysAdminDep, security: SecurityDep, guardrails: GuardrailsDep
) -> dict[str, Any]:
    store = _store(guardrails)
    if principal.is_system_admin:
        return {"object": "list", "data": store.list()}
    own = [f"tenant:{principal.tenant}"]
    own += [f"key:{k.id}" for k in security.keys.all(principal.tenant, include_revoked=True)]
    return {"object": "list", "data": store.list(own)}


@router.put("/guardrails/policies")
def put_policy(
    body: PolicyUpdate,
    principal: KeysAdminDep,
    security: SecurityDep,
    guardrails: GuardrailsDep,
) -> dict[str, Any]:
    scope, owner = _policy_scope(principal, security, body)
    parsed = policies.parse(body.policies)
    for name, policy in parsed.items():
        guardrails.guard(name, policy.options)  # unknown guards and bad options fail now
    _store(guardrails).put(scope, body.stage, parsed, principal.actor)
    security.record_event(
        "guardrail.policy.updated",
        principal=principal,
        tenant=owner,
        detail={"scope": scope, "stage": body.stage, "guards": sorted(parsed)},
        durable=True,
    )
    return {"scope": scope, "stage": body.stage, "policies": body.policies}


@router.delete("/guardrails/policies")
def delete_policy(
    principal: KeysAdminDep,
    security: SecurityDep,
    guardrails: GuardrailsDep,
    stage: Annotated[Literal["input", "context", "output"], Query()],
    tenant: TenantQuery = None,
    key_id: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    scope, owner = _policy_scope(
        principal, security, PolicyScope(tenant=tenant, key_id=key_id, model=model)
    )
    if not _store(guardrails).remove(scope, stage):
        raise NotFound(f"No {stage} policy for {scope}.", code="policy_not_found")
    security.record_event(
        "guardrail.policy.deleted",
        principal=principal,
        tenant=owner,
        detail={"scope": scope, "stage": stage},
        durable=True,
    )
    return {"scope": scope, "stage": stage, "deleted": True}
