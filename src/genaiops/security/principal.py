"""Who is calling: the principal every authenticated request carries, and what each role
may do.

Roles: ``admin`` (everything in its tenant), ``operator`` (models, collections, evals, and
reading logs and usage), ``user`` (inference on the models its key allows). An ``admin``
of the reserved ``system`` tenant is the installation's administrator and may act on any
tenant; every other principal only ever sees its own tenant.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from genaiops.config import Role
from genaiops.errors import PermissionDenied

SYSTEM_TENANT = "system"
ROLES: tuple[Role, ...] = ("admin", "operator", "user")


class Permission(enum.Enum):
    INFERENCE = "inference"
    MANAGE_MODELS = "manage_models"
    MANAGE_COLLECTIONS = "manage_collections"
    RUN_EVALS = "run_evals"
    READ_LOGS = "read_logs"
    READ_USAGE = "read_usage"
    MANAGE_KEYS = "manage_keys"
    MANAGE_TENANTS = "manage_tenants"


_OPERATOR = {
    Permission.INFERENCE,
    Permission.MANAGE_MODELS,
    Permission.MANAGE_COLLECTIONS,
    Permission.RUN_EVALS,
    Permission.READ_LOGS,
    Permission.READ_USAGE,
}
GRANTS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "operator": frozenset(_OPERATOR),
    "user": frozenset({Permission.INFERENCE}),
}


@dataclass(frozen=True)
class Limits:
    """Per-minute rates and a token budget; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    budget_tokens: int | None = None
    budget_period: str = "month"


@dataclass(frozen=True)
class Principal:
    tenant: str
    role: Role
    # Stable id of the credential: an API key id, "jwt:<subject>" or "anonymous".
    actor: str
    via: str  # "api_key" | "jwt" | "disabled"
    models: frozenset[str] | None = None
    limits: Limits = field(default_factory=Limits)
    # API keys: the key ids whose spending counts against this key's limits and budget
    # (the keys it was rotated from, then itself); the first names the counters.
    lineage: tuple[str, ...] = ()

    @property
    def limits_id(self) -> str:
        """The id limits and budgets are counted under: the first key of the line, so a
        rotation keeps what was spent instead of starting afresh."""
        return self.lineage[0] if self.lineage else self.actor

    @property
    def is_system_admin(self) -> bool:
        return self.role == "admin" and self.tenant == SYSTEM_TENANT

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise PermissionDenied(
                f"The '{self.role}' role may not {permission.value.replace('_', ' ')}.",
                code="insufficient_role",
            )

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def require_model(self, model: str) -> None:
        if not self.allows_model(model):
            raise PermissionDenied(
                f"This API key may not use the model '{model}'.",
                param="model",
                code="model_not_allowed",
            )

    def scope(self, tenant: str | None) -> str | None:
        """The tenant a read or write applies to: a principal's own tenant unless it is the
        system administrator, who may name any tenant (None: all tenants)."""
        if self.is_system_admin:
            return tenant
        if tenant is not None and tenant != self.tenant:
            raise PermissionDenied(
                "Credentials of one tenant cannot act on another tenant.", code="wrong_tenant"
            )
        return self.tenant


ANONYMOUS_ADMIN = Principal(tenant=SYSTEM_TENANT, role="admin", actor="anonymous", via="disabled")
