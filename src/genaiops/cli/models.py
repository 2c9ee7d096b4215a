"""genaiops models: inspect the model catalog and its models' tokenizers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genaiops.cli.common import ConfigOption, cli_errors, command_group, settings_from
from genaiops.engines.base import ChatMessage, GenerationRequest, SamplingParams, Tokenizing
from genaiops.errors import InvalidRequest

T = TypeVar("T")

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


async def _with_tokenizer(settings: Any, name: str, work: Callable[[Tokenizing], T]) -> T:
    """Load ``name`` (a registry reference loads its base: same tokenizer) and run
    ``work`` with its engine."""
    from genaiops.gateway.service import Gateway

    if Gateway.is_registry_reference(name):
        from genaiops.registry.service import Registry
        from genaiops.security.principal import SYSTEM_TENANT

        name = (await asyncio.to_thread(Registry(settings).resolve, SYSTEM_TENANT, name)).base_model
    gateway = Gateway(settings, only=[name])
    await gateway.start()
    try:
        await gateway.wait_ready()
        engine = gateway.resolve(name).engine
        if not isinstance(engine, Tokenizing):
            raise InvalidRequest(
                f"model '{name}' is served by a remote upstream, which tokenizes on its side"
            )
        return await asyncio.to_thread(work, engine)
    finally:
        await gateway.close()


@app.command("tokenize")
def tokenize(
    text: Annotated[str, typer.Argument(help="Text to tokenize.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name.")] = None,
    chat: bool = typer.Option(
        False, "--chat", help="As a user message of a chat request (chat template applied)."
    ),
    config: ConfigOption = None,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show a model's token ids for a text: the ids logit_bias names, and the count a
    request is charged for."""
    with cli_errors():
        settings = settings_from(config)
        name = model or settings.default_model

        def work(engine: Tokenizing) -> tuple[list[int], list[str]]:
            request = GenerationRequest(
                "tokenize",
                name,
                SamplingParams(),
                messages=[ChatMessage("user", text)] if chat else None,
                prompt=None if chat else text,
            )
            ids = engine.token_ids(request)
            return ids, [engine.token_text([i]) for i in ids]

        ids, pieces = asyncio.run(_with_tokenizer(settings, name, work))
        if as_json:
            typer.echo(json.dumps({"model": name, "count": len(ids), "tokens": ids,
                                   "token_strs": pieces}, ensure_ascii=False))  # fmt: skip
            return
        table = Table(title=f"{len(ids)} tokens ({escape(name)})")
        table.add_column("#", justify="right")
        table.add_column("id", justify="right")
        table.add_column("text")
        for i, (token, piece) in enumerate(zip(ids, pieces, strict=True)):
            table.add_row(str(i), str(token), escape(repr(piece)))
        Console().print(table)


@app.command("detokenize")
def detokenize(
    ids: Annotated[list[int], typer.Argument(help="Token ids.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name.")] = None,
    config: ConfigOption = None,
) -> None:
    """Print the text of token ids."""
    with cli_errors():
        settings = settings_from(config)
        name = model or settings.default_model
        typer.echo(asyncio.run(_with_tokenizer(settings, name, lambda e: e.token_text(ids))))
