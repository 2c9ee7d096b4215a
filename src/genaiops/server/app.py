"""Composition root: create_app(settings) builds every service once, in the lifespan, and
hands them to routes through typed dependencies."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from genaiops import __version__
from genaiops.config import Settings, load_settings
from genaiops.gateway.context import RequestContext
from genaiops.gateway.service import Gateway
from genaiops.guardrails.policies import PolicyStore
from genaiops.guardrails.service import GuardrailsService
from genaiops.monitoring.metrics import Metrics
from genaiops.monitoring.record import RequestRecorder
from genaiops.rag.service import RagService
from genaiops.security.service import SecurityService, admin_key_path
from genaiops.server import errors
from genaiops.server.middleware import Authenticate, BodyLimit, Telemetry
from genaiops.server.routes import (
    admin,
    collections,
    finetuning,
    generate,
    guardrails,
    health,
    metrics,
    openai,
    responses,
    tokenize,
)
from genaiops.training.service import FineTuning, JobRunner

log = logging.getLogger("genaiops.server")

_AUTH_OFF_BANNER = """
!!! genaiops: AUTHENTICATION IS DISABLED (auth.enabled = false) !!!
!!! Every request is served as the system administrator, with no limits.  !!!
!!! Never expose this server beyond a trusted network.                      !!!
"""


def _announce_security(settings: Settings, security: SecurityService) -> None:
    if not settings.auth.enabled:
        sys.stderr.write(_AUTH_OFF_BANNER)
        log.warning("authentication is disabled")
        return
    secret = security.bootstrap_admin()
    if secret is not None:
        path = admin_key_path(settings)
        sys.stderr.write(
            "\nCreated the administrator API key for this installation (shown only once;\n"
            f"also saved, readable only by you, in {path}):\n\n    {secret}\n\n"
        )


async def _warm_up(gateway: Gateway, guardrails: GuardrailsService) -> None:
    """The guards, then every model (a failure is the model's own state, shown by
    /readyz); then everything loaded so far is put out of the garbage collector's sight. It
    lives as long as the server, and a full collection during a request then walks only
    what requests made (with the models and guards loaded one took about 0.1 s, a pause for
    whichever requests were running). Unfrozen at shutdown, so nothing is kept."""
    try:
        await asyncio.to_thread(guardrails.warm)
    except Exception:
        # /readyz stays 503 and names the failure; requests would load the guards again.
        log.exception("the guardrails failed to load")
        raise
    with contextlib.suppress(Exception):
        await gateway.wait_ready()
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        security = SecurityService(settings)
        security.start()
        rag = RagService(settings)
        policy_store = PolicyStore(
            security.db,
            settings.guardrails,
            settings.auth.key_cache_ttl_s,
            production=settings.env == "production",
        )
        guardrails = GuardrailsService(settings.guardrails, store=policy_store)
        gateway = Gateway(settings, security=security, rag=rag, guardrails=guardrails)
        finetuning = FineTuning(settings, security.db)
        runner = JobRunner(settings, security.db) if settings.finetune.run_jobs else None
        app.state.finetuning = finetuning
        app.state.rag = rag
        app.state.guardrails = guardrails
        app.state.settings = settings
        app.state.gateway = gateway
        app.state.security = security
        app.state.metrics = Metrics(gateway.status)
        app.state.record = RequestRecorder(app.state.metrics, security)
        _announce_security(settings, security)
        security.record_start(gateway.names(), {"version": __version__, "auth": security.enabled})
        # Models load in the background (gateway.start returns at once), and so do the
        # guards (scikit-learn, the injection model, the sentence encoder): the server
        # answers /healthz at once and /readyz with 503 until both are done.
        guardrails.build()  # a misconfigured guard stops the start, as before any model loads
        await gateway.start()
        app.state.warm_up = asyncio.create_task(_warm_up(gateway, guardrails), name="warm-up")
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if not app.state.warm_up.done():
                app.state.warm_up.cancel()
            gc.unfreeze()
            if runner is not None:
                await asyncio.to_thread(runner.stop)
            await gateway.close()
            rag.close()
            security.record_event("server.stopped")
            await security.close()

    app = FastAPI(
        title="genaiops",
        version=__version__,
        description="OpenAI-compatible gateway over local and remote models.",
        lifespan=lifespan,
    )

    def record(ctx: RequestContext, status: int, scope: dict[str, Any]) -> None:
        recorder = getattr(app.state, "record", None)
        if recorder is not None:
            recorder(ctx, status, scope)

    errors.install(app)
    # Added innermost first: Telemetry wraps Authenticate wraps BodyLimit.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.server.max_body_bytes,
        # Document uploads may be larger than API bodies, up to the per-file limit (plus
        # the multipart framing).
        upload_bytes=max(
            settings.rag.max_upload_bytes + 1024 * 1024,
            settings.finetune.max_upload_bytes + 1024 * 1024,
            settings.server.max_body_bytes,
        ),
    )
    app.add_middleware(Authenticate)
    app.add_middleware(Telemetry, record=record)
    app.include_router(health.router)
    app.include_router(openai.router)
    app.include_router(responses.router)
    app.include_router(generate.router)
    app.include_router(tokenize.router)
    app.include_router(collections.router)
    app.include_router(guardrails.router)
    app.include_router(admin.router)
    app.include_router(finetuning.router)
    if settings.metrics.enabled:
        app.include_router(metrics.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
