"""genaiops command line: serving, security and operations, retrieval, guardrails,
fine-tuning and the model registry."""

from __future__ import annotations

import typer

from genaiops import __version__
from genaiops.cli import audit, finetune, guardrails, inference, keys, models, rag, serve

app = typer.Typer(
    name="genaiops",
    help="Self-hosted Gen AI Ops: an OpenAI-compatible gateway over local and remote models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.add_typer(models.app, name="models")
app.command("chat")(inference.chat)
app.command("generate")(inference.generate)
app.add_typer(keys.app, name="keys")
app.add_typer(keys.tenants_app, name="tenants")
app.add_typer(audit.app, name="audit")
app.command("usage")(audit.usage_command)
app.add_typer(rag.collections_app, name="collections")
app.add_typer(rag.documents_app, name="documents")
app.command("ingest")(rag.ingest)
app.command("search")(rag.search)
app.command("ask")(rag.ask)
app.add_typer(guardrails.app, name="guardrails")
app.command("finetune")(finetune.finetune)
app.add_typer(finetune.jobs_app, name="jobs")
app.add_typer(finetune.registry_app, name="registry")


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """genaiops."""


def main() -> None:
    app()
