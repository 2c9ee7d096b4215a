"""genaiops audit / usage: verify and export the audit log, and report usage."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from genaiops.cli.common import (
    ConfigOption,
    cli_errors,
    command_group,
    settings_from,
    valid_tenant,
    write,
)
from genaiops.cli.keys import JsonOption, _emit, security_service
from genaiops.errors import InvalidRequest
from genaiops.security import audit, usage
from genaiops.storage.db import Database

app = command_group("Verify and export the hash-chained audit log.")

SinceOption = Annotated[
    str | None, typer.Option("--since", help="Date, ISO date-time or epoch seconds.")
]
UntilOption = Annotated[str | None, typer.Option("--until", help="Exclusive end, same forms.")]
TenantOption = Annotated[str | None, typer.Option("--tenant", callback=valid_tenant)]


@app.command("verify")
def verify(
    anchor: Annotated[
        list[str] | None,
        typer.Option(
            "--anchor",
            help="SEQ:HASH of a record kept outside the database (an export, an earlier "
            "verification's head); repeatable.",
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the whole chain; exit 1 and name the first bad record if it was tampered with."""
    with cli_errors():
        anchors = [audit.parse_anchor(a) for a in anchor or []]
        # Read-only: no migration, no restored head, no recorder (a forensic copy stays
        # as it was).
        db = Database(settings_from(config).database_url(), read_only=True)
        try:
            result = audit.verify(db, anchors=anchors)
        finally:
            db.close()
    if as_json:
        write(json.dumps(result.as_dict()) + "\n")
    elif result.ok:
        head = f"; head {result.records}:{result.head_hash}" if result.head_hash else ""
        write(f"audit log intact: {result.records} records{head}\n")
    else:
        typer.echo(f"audit log TAMPERED: {result.reason}", err=True)
    if not result.ok:
        raise typer.Exit(1)


@app.command("export")
def export(
    since: SinceOption = None,
    until: UntilOption = None,
    tenant: TenantOption = None,
    event: Annotated[str | None, typer.Option("--event", help="Only this event type.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Export records (with their hashes) for a SIEM: one JSON object per line, or CSV."""
    with cli_errors(), security_service(config) as service:
        if fmt not in ("jsonl", "csv"):
            raise InvalidRequest(f"--format must be jsonl or csv, not {fmt!r}")
        service.recorder.flush()
        records = audit.query(
            service.db,
            tenant=tenant,
            since_us=audit.parse_instant(since, "since") if since else None,
            until_us=audit.parse_instant(until, "until") if until else None,
            event=event,
        )
        out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            count = 0
            writer = csv.DictWriter(out, fieldnames=audit.EXPORT_FIELDS) if fmt == "csv" else None
            if writer is not None:
                writer.writeheader()
            for record in records:
                if writer is not None:
                    writer.writerow(record | {"detail": json.dumps(record["detail"])})
                else:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        finally:
            if output:
                out.close()
        if output:
            typer.echo(f"exported {count} records to {output}", err=True)


@app.command("prune")
def prune(
    before: Annotated[
        str,
        typer.Option(
            "--before", help="Delete records older than this (date, ISO date-time, epoch s)."
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete records older than a retention limit; the chain still verifies from there
    (an audit.pruned record names the last record deleted and its hash)."""
    with cli_errors():
        before_us = audit.parse_instant(before, "before")
        if not yes and not typer.confirm(f"Delete every audit record before {before}?"):
            raise typer.Exit(1)
        with security_service(config) as service:
            service.recorder.flush()
            result = audit.prune(service.db, before_us, actor="cli")
    if as_json:
        write(json.dumps(result) + "\n")
    elif result["pruned"]:
        write(f"pruned {result['pruned']} records through {result['through_seq']}\n")
    else:
        write("nothing to prune\n")


def usage_command(
    tenant: TenantOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="First day, e.g. 2026-11-01.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last day (inclusive).")] = None,
    group_by: Annotated[
        str, typer.Option("--group-by", help="Comma-separated: day,tenant,key_id,model.")
    ] = "day,tenant,model",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tokens and requests per key, tenant, model and day."""
    with cli_errors(), security_service(config) as service:
        groups = [g.strip() for g in group_by.split(",") if g.strip()]
        rows = usage.query(service.db, tenant=tenant, since=since, until=until, group_by=groups)
        columns = [*groups, "requests", "errors", "prompt_tokens", "completion_tokens"]
        _emit(rows, as_json, [*columns, "total_tokens"], "usage")
