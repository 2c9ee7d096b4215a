"""genaiops serve: run the HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import FrameType
from typing import Annotated, Any

import typer

from genaiops.cli.common import ConfigOption, cli_errors, settings_from
from genaiops.errors import GenaiopsError


def _listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before anything starts: a port in use is one
    line and exit 1, not a traceback after the models began loading."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise GenaiopsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise GenaiopsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _draining_server(config: Any) -> Any:
    """uvicorn's server, which on SIGTERM or Ctrl-C first tells the gateway to drain:
    queued requests are answered 503 at once (their clients retry elsewhere) and new ones
    refused, while running ones finish within ``server.shutdown_grace_s``."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            gateway = getattr(getattr(self.config.app, "state", None), "gateway", None)
            if gateway is not None and not self.should_exit:
                with contextlib.suppress(RuntimeError):  # no running loop: nothing to drain
                    asyncio.get_running_loop().call_soon_threadsafe(gateway.drain)
            super().handle_exit(sig, frame)

    return Server(config)


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
        sock = _listen(settings.server.host, settings.server.port)
        bound = sock.getsockname()[1]  # the port the OS chose for --port 0
        typer.echo(
            f"genaiops serving on http://{settings.server.host}:{bound} "
            f"(data: {settings.data_dir}; models: {', '.join(m.name for m in settings.catalog())})",
            err=True,
        )
        server_config = uvicorn.Config(
            create_app(settings),
            host=settings.server.host,
            port=settings.server.port,
            log_level=settings.server.log_level,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=settings.server.shutdown_grace_s,
        )
        with sock:
            _draining_server(server_config).run(sockets=[sock])
