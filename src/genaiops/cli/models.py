"""genaiops models: inspect the model catalog."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genaiops.cli.common import ConfigOption, cli_errors, command_group, settings_from

app = command_group("Inspect the model catalog.")


@app.command("list")
def list_models(
    config: ConfigOption = None,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the models this installation serves (from genaiops.toml and the bundled set)."""
    with cli_errors():
        settings = settings_from(config)
        rows = []
        for m in settings.catalog():
            if m.engine == "remote":
                source = m.base_url or ""
            elif m.bundled:
                source = f"bundled:{m.bundled}"
            else:
                source = str(m.path)
            rows.append(
                {
                    "name": m.name,
                    "engine": m.engine,
                    "source": source,
                    "context_length": m.context_length if m.engine != "remote" else None,
                    "chat": m.chat_template != "none",
                    "default": m.name == settings.default_model,
                    "description": m.description,
                }
            )
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        table = Table()
        table.add_column("name", no_wrap=True)
        table.add_column("engine", no_wrap=True)
        table.add_column("source", overflow="fold")
        for column in ("context", "chat", "default"):
            table.add_column(column, no_wrap=True)
        for r in rows:
            table.add_row(
                escape(str(r["name"])),
                escape(str(r["engine"])),
                escape(str(r["source"])),
                str(r["context_length"] or "-"),
                "yes" if r["chat"] else "no",
                "*" if r["default"] else "",
            )
        Console().print(table)
