"""genaiops keys / tenants: manage API keys and tenant limits in the configured database.

These commands act as the system administrator: whoever can reach the database (the data
directory, or the PostgreSQL URL) already controls the installation. Every change is
written to the audit log with the actor "cli".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genaiops.cli.common import ConfigOption, cli_errors, command_group, settings_from, write
from genaiops.errors import InvalidRequest
from genaiops.security.keys import check_tenant, parse_duration
from genaiops.security.principal import SYSTEM_TENANT, Limits, Principal
from genaiops.security.service import SecurityService

app = command_group("Create, list, revoke and rotate API keys.")
tenants_app = command_group("List tenants and set their limits.")

CLI_ACTOR = Principal(tenant=SYSTEM_TENANT, role="admin", actor="cli", via="cli")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
RpmOption = Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")]
TpmOption = Annotated[int | None, typer.Option("--tpm", help="Tokens per minute.")]
BudgetOption = Annotated[
    int | None, typer.Option("--budget-tokens", help="Tokens allowed per budget period.")
]
PeriodOption = Annotated[str, typer.Option("--budget-period", help="Budget period: day or month.")]


@contextmanager
def security_service(config: Path | None) -> Iterator[SecurityService]:
    settings = settings_from(config)
    service = SecurityService(settings)
    service.start()
    try:
        yield service
    finally:
        service.recorder.close()
        service.db.close()


def audit_event(config: Path | None, event: str, tenant: str, **detail: Any) -> None:
    """An audit record for a change made from the command line (actor "cli"), as the
    HTTP route for the same change writes one."""
    with security_service(config) as service:
        service.record_event(event, principal=CLI_ACTOR, tenant=tenant, detail=detail)


def _models(text: str) -> list[str]:
    """``--models a,b`` -> the names. An empty value is refused rather than read as "every
    model" (a script passing an empty variable must not get the widest key)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise InvalidRequest(
            "--models names no model; leave it out to allow every model", param="models"
        )
    return names


def _table(rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column in ("id", "tenant", "day"))
    for row in rows:
        # Cells are data (a key's name, a document's title), never markup.
        table.add_row(*("" if row.get(c) is None else escape(str(row.get(c))) for c in columns))
    Console().print(table)


def _emit(data: Any, as_json: bool, columns: list[str], title: str) -> None:
    if as_json:
        write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        _table(data if isinstance(data, list) else [data], columns, title)


_KEY_COLUMNS = ["id", "tenant", "name", "role", "status", "rpm", "tpm", "budget_tokens", "models"]


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key belongs to.")],
    role: Annotated[str, typer.Option("--role", help="admin, operator or user.")] = "user",
    name: Annotated[str, typer.Option("--name", help="A label for people.")] = "",
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget_tokens: BudgetOption = None,
    budget_period: PeriodOption = "month",
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime such as 30d, 12h, 90m.")
    ] = None,
    models: Annotated[
        str | None, typer.Option("--models", help="Comma-separated models this key may use.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key. Its secret is printed once and never stored."""
    with cli_errors(), security_service(config) as service:
        new = service.create_key(
            CLI_ACTOR,
            tenant=tenant,
            role=role,
            name=name,
            limits=Limits(rpm, tpm, budget_tokens, budget_period),
            models=None if models is None else _models(models),
            expires_in_s=None if expires is None else parse_duration(expires),
        )
        if as_json:
            write(json.dumps(new.record.public() | {"key": new.secret}, indent=2) + "\n")
        else:
            typer.echo(f"created key {new.record.id} (tenant {tenant}, role {role})", err=True)
            typer.echo("secret (shown only once):", err=True)
            write(new.secret + "\n")


@app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List keys (never their secrets)."""
    with cli_errors(), security_service(config) as service:
        if tenant is not None:
            check_tenant(tenant)
        rows = [r.public() for r in service.keys.all(tenant, include_revoked=include_revoked)]
        _emit(rows, as_json, _KEY_COLUMNS, "API keys")


@app.command("revoke")
def revoke(key_id: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Revoke a key at once (other server processes notice within auth.key_cache_ttl_s)."""
    with cli_errors(), security_service(config) as service:
        record = service.revoke_key(CLI_ACTOR, key_id)
        _emit(record.public(), as_json, _KEY_COLUMNS, "revoked")


@app.command("rotate")
def rotate(key_id: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Replace a key with a new secret (same tenant, role, limits); the old one is revoked."""
    with cli_errors(), security_service(config) as service:
        new, old = service.rotate_key(CLI_ACTOR, key_id)
        if as_json:
            write(json.dumps(new.record.public() | {"key": new.secret}, indent=2) + "\n")
        else:
            typer.echo(f"revoked {old.id}; new key {new.record.id} (shown only once):", err=True)
            write(new.secret + "\n")


_TENANT_COLUMNS = ["name", "rpm", "tpm", "budget_tokens", "budget_period"]


@tenants_app.command("list")
def list_tenants(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List tenants and their limits."""
    with cli_errors(), security_service(config) as service:
        _emit([t.public() for t in service.keys.tenants()], as_json, _TENANT_COLUMNS, "tenants")


@tenants_app.command("set")
def set_tenant(
    name: str,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budget_tokens: BudgetOption = None,
    budget_period: PeriodOption = "month",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a tenant or replace its limits (an omitted limit means unlimited)."""
    with cli_errors(), security_service(config) as service:
        record = service.set_tenant(CLI_ACTOR, name, Limits(rpm, tpm, budget_tokens, budget_period))
        _emit(record.public(), as_json, _TENANT_COLUMNS, "tenant")
