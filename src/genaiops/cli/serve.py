"""genaiops serve: run the HTTP server."""

from __future__ import annotations

from typing import Annotated

import typer

from genaiops.cli.common import ConfigOption, cli_errors, settings_from


def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000].")] = None,
) -> None:
    """Start the OpenAI-compatible server with the configured models."""
    import uvicorn

    from genaiops.server.app import create_app

    with cli_errors():
        server: dict[str, object] = {}
        if host is not None:
            server["host"] = host
        if port is not None:
            server["port"] = port
        settings = settings_from(config, server=server or None)
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        from genaiops.monitoring import logs

        logs.configure(settings.server.log_level, settings.server.log_format)
        typer.echo(
            f"genaiops serving on http://{settings.server.host}:{settings.server.port} "
            f"(data: {settings.data_dir}; models: {', '.join(m.name for m in settings.catalog())})",
            err=True,
        )
        uvicorn.run(
            create_app(settings),
            host=settings.server.host,
            port=settings.server.port,
            log_level=settings.server.log_level,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
