"""genaiops command line: serving, security and operations, retrieval, guardrails,
fine-tuning and the model registry."""

from __future__ import annotations

import os
import sys

import typer

from genaiops import __version__
from genaiops.cli import audit, finetune, guardrails, inference, keys, models, rag, serve
from genaiops.cli.common import command_group

app = command_group(
    "Self-hosted Gen AI Ops: an OpenAI-compatible gateway over local and remote models.",
    name="genaiops",
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


def _not_utf8(args: list[str]) -> int | None:
    """The position of the first argument that is not valid UTF-8 (the OS hands Python such
    bytes as lone surrogates, which nothing downstream can store or print)."""
    for i, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return i
    return None


def _unexpected(exc: Exception) -> str:
    """One line for a failure no command anticipated (GENAIOPS_DEBUG=1 shows the trace)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    if isinstance(exc, UnicodeError):
        return "a value or file name is not valid UTF-8"
    if isinstance(exc, OverflowError):
        return "a number is too large"
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main() -> None:
    """The console script: every failure is one line on stderr and a non-zero exit code,
    usage mistakes (an unknown option, a value out of range) included."""
    bad = _not_utf8(sys.argv[1:])
    if bad is not None:
        typer.echo(f"error: argument {bad} is not valid UTF-8", err=True)
        raise SystemExit(2)
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # Typer's usage and parameter errors
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]  # the help, as a bare group asks for
        else:
            ctx = getattr(exc, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            format_message = getattr(exc, "format_message", None)
            message = format_message() if callable(format_message) else str(exc)
            typer.echo(f"error: {message}{where}", err=True)
        code = getattr(exc, "exit_code", 2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        code = 130
    except Exception as exc:  # a last resort: still one line, never a traceback
        if os.environ.get("GENAIOPS_DEBUG"):
            raise
        typer.echo(f"error: {_unexpected(exc)}", err=True)
        code = 1
    raise SystemExit(code if isinstance(code, int) else 0)
