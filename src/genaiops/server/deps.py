"""Typed dependencies: routes receive the services the lifespan built, never globals.

They are coroutines although none of them waits for anything: FastAPI runs a plain
function dependency in its thread pool, a thread hand-off per dependency on every request
(a few tenths of a millisecond before a chat request reaches the pipeline)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from genaiops.config import Settings
from genaiops.errors import AuthenticationError
from genaiops.gateway.context import RequestContext
from genaiops.gateway.service import Gateway
from genaiops.guardrails.service import GuardrailsService
from genaiops.monitoring.metrics import Metrics
from genaiops.rag.service import RagService
from genaiops.security.principal import Permission, Principal
from genaiops.security.service import SecurityService
from genaiops.training.service import FineTuning


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_security(request: Request) -> SecurityService:
    security: SecurityService = request.app.state.security
    return security


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_rag(request: Request) -> RagService:
    rag: RagService = request.app.state.rag
    return rag


async def get_guardrails(request: Request) -> GuardrailsService:
    guardrails: GuardrailsService = request.app.state.guardrails
    return guardrails


async def get_finetuning(request: Request) -> FineTuning:
    service: FineTuning = request.app.state.finetuning
    return service


async def get_context(request: Request) -> RequestContext:
    ctx: RequestContext = request.state.ctx
    return ctx


async def get_principal(request: Request) -> Principal:
    """Set by the Authenticate middleware; absent only on public paths."""
    ctx: RequestContext = request.state.ctx
    if ctx.principal is None:
        raise AuthenticationError("Missing credentials.", code="missing_api_key")
    return ctx.principal


def require(permission: Permission) -> Callable[[Request], Awaitable[Principal]]:
    async def check(request: Request) -> Principal:
        principal = await get_principal(request)
        principal.require(permission)
        return principal

    return check


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SecurityDep = Annotated[SecurityService, Depends(get_security)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ContextDep = Annotated[RequestContext, Depends(get_context)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
InferenceDep = Annotated[Principal, Depends(require(Permission.INFERENCE))]
KeysAdminDep = Annotated[Principal, Depends(require(Permission.MANAGE_KEYS))]
LogsReaderDep = Annotated[Principal, Depends(require(Permission.READ_LOGS))]
UsageReaderDep = Annotated[Principal, Depends(require(Permission.READ_USAGE))]
CollectionsManagerDep = Annotated[Principal, Depends(require(Permission.MANAGE_COLLECTIONS))]
RagDep = Annotated[RagService, Depends(get_rag)]
GuardrailsDep = Annotated[GuardrailsService, Depends(get_guardrails)]
FineTuningDep = Annotated[FineTuning, Depends(get_finetuning)]
ModelsManagerDep = Annotated[Principal, Depends(require(Permission.MANAGE_MODELS))]


# Routes that act on tenant data take an optional ``tenant`` query parameter: only the
# system administrator may name another tenant (``Principal.scope``).
TenantQuery = Annotated[
    str | None,
    # An empty "?tenant=" is a mistake, not "every tenant" nor "none".
    Query(
        min_length=1, max_length=64, description="System administrator only: a tenant to act on."
    ),
]


def owner_tenant(principal: Principal, tenant: str | None) -> str:
    """The tenant a write applies to: the caller's, or the one a system admin named."""
    return principal.scope(tenant) or principal.tenant


def audit(
    security: SecurityService, event: str, principal: Principal, tenant: str, **detail: Any
) -> None:
    security.record_event(event, principal=principal, tenant=tenant, detail=detail)
