"""Shared CLI plumbing: settings from --config, and domain errors as one line + exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from genaiops.config import Settings, load_settings
from genaiops.errors import ConfigError, GenaiopsError, InvalidRequest, ModelNotFound

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to genaiops.toml.", show_default=False),
]


def command_group(help: str, no_args_is_help: bool = True, **options: Any) -> typer.Typer:
    """A Typer app for a group of commands (its help shown when called bare): help texts
    read as Markdown, so a docstring wrapped over several lines reflows as one paragraph."""
    return typer.Typer(
        help=help, rich_markup_mode="markdown", no_args_is_help=no_args_is_help, **options
    )


def valid_tenant(value: str | None) -> str | None:
    """A --tenant option's callback: a name no credential can carry is a usage error, not
    data stored where nobody can reach it."""
    from genaiops.security.keys import check_tenant

    if value is None:
        return None
    try:
        return check_tenant(value)
    except InvalidRequest as exc:
        raise typer.BadParameter(exc.message) from None


EXIT_ERROR = 1
EXIT_USAGE = 2


def exit_code(exc: GenaiopsError) -> int:
    return (
        EXIT_USAGE if isinstance(exc, ConfigError | InvalidRequest | ModelNotFound) else EXIT_ERROR
    )


@contextmanager
def cli_errors() -> Iterator[None]:
    try:
        yield
    except GenaiopsError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exit_code(exc)) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    return load_settings(config, **clean)


def write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


Writer = Callable[[str], None]
