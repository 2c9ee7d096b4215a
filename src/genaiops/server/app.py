"""Composition root: create_app(settings) builds every service once, in the lifespan, and
hands them to routes through typed dependencies."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from genaiops import __version__
from genaiops.config import Settings, load_settings
from genaiops.gateway.service import Gateway
from genaiops.server import errors
from genaiops.server.middleware import BodyLimit
from genaiops.server.routes import generate, health, openai

log = logging.getLogger("genaiops.server")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        gateway = Gateway(settings)
        app.state.settings = settings
        app.state.gateway = gateway
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    app = FastAPI(
        title="genaiops",
        version=__version__,
        description="OpenAI-compatible gateway over local and remote models.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    app.include_router(health.router)
    app.include_router(openai.router)
    app.include_router(generate.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
