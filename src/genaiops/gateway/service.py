"""The gateway service: the catalog of loaded models, each with its engine and scheduler.

Built once by the server's lifespan (or the CLI) from Settings. Models load in the
background so the process answers /healthz at once and /readyz once they are usable; a
model that fails to load is reported, not fatal, so one bad catalog entry does not take
the others down.

Fine-tuned models are not in the catalog: ``name@alias`` and ``name:version`` go through
the model registry (``adapters.AdapterModels``), which loads a version on first use and
re-reads aliases every few seconds, so moving an alias needs no restart and requests
already running on the previous version finish on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from genaiops.config import ModelConfig, Settings
from genaiops.engines.base import Engine, GenerationRequest, ModelInfo, create_engine
from genaiops.engines.scheduler import Scheduler
from genaiops.errors import ModelNotFound, ModelNotReady
from genaiops.gateway import pipeline
from genaiops.gateway.adapters import AdapterModels
from genaiops.gateway.context import RequestContext
from genaiops.gateway.pipeline import GenerationStream

if TYPE_CHECKING:
    from genaiops.guardrails.service import GuardrailsService
    from genaiops.rag.service import RagService
    from genaiops.security.service import SecurityService

log = logging.getLogger("genaiops.gateway")


@dataclass
class ModelHandle:
    config: ModelConfig
    engine: Engine
    scheduler: Scheduler
    load_task: asyncio.Task[None] | None = field(default=None)


class Gateway:
    def __init__(
        self,
        settings: Settings,
        only: list[str] | None = None,
        security: SecurityService | None = None,
        rag: RagService | None = None,
        guardrails: GuardrailsService | None = None,
    ):
        """Build engines for the catalog, or for the ``only`` names (the CLI loads one).

        Without ``security`` (the CLI's local commands) no limits are applied.
        """
        self.settings = settings
        self.draining = False  # the server is stopping (see ``drain``)
        self.security = security
        self.rag = rag
        self.guardrails = guardrails
        self._models: dict[str, ModelHandle] = {}
        self.adapters = AdapterModels(settings, self._handle)
        catalog = settings.catalog()
        if only is not None:
            known = [c.name for c in catalog]
            for name in only:
                if name not in known:
                    raise ModelNotFound(name, known)
            catalog = [c for c in catalog if c.name in only]
        for config in catalog:
            self._models[config.name] = self._handle(config)

    def _handle(self, config: ModelConfig) -> ModelHandle:
        engine = create_engine(config, self.settings)
        scheduler = Scheduler(
            engine,
            max_queue=(
                config.max_queue
                if config.max_queue is not None
                else self.settings.scheduler.max_queue
            ),
            timeout_s=config.timeout_s or self.settings.scheduler.timeout_s,
            retry_after_s=self.settings.scheduler.retry_after_s,
        )
        return ModelHandle(config, engine, scheduler)

    async def start(self) -> None:
        """Start schedulers and begin loading every model; returns without waiting."""
        for handle in self._models.values():
            handle.scheduler.start()
            handle.load_task = asyncio.create_task(
                self._load(handle), name=f"load-{handle.config.name}"
            )

    async def _load(self, handle: ModelHandle) -> None:
        try:
            await handle.engine.start()
            log.info("model ready", extra={"model": handle.config.name})
        except Exception as exc:
            log.error("model %s failed to load: %s", handle.config.name, exc)

    async def wait_ready(self, names: list[str] | None = None) -> None:
        """Wait for the named models (all by default) to finish loading; raise if any failed."""
        handles = [self._models[n] for n in names] if names else list(self._models.values())
        tasks = [h.load_task for h in handles if h.load_task is not None]
        if tasks:
            await asyncio.gather(*tasks)
        failed = [h.config.name for h in handles if not h.engine.ready]
        if failed:
            states = "; ".join(f"{n}: {self._models[n].engine.state}" for n in failed)
            raise ModelNotReady(f"models failed to load: {states}")

    def drain(self) -> None:
        """The server is stopping: every model refuses new work and answers its queue 503
        (see ``Scheduler.drain``) while running requests finish, for up to the grace."""
        self.draining = True
        handles = [h for _, h in [*self._models.items(), *self.adapters.loaded()]]
        for handle in handles:
            handle.scheduler.drain()
        # Shortly before the server gives up on them (a quarter of the grace, between one
        # and three seconds, time enough on a loaded machine), the running requests are
        # ended with an error their clients can read (a stream gets it in-band, then its end).
        grace = self.settings.server.shutdown_grace_s
        margin = max(1.0, min(3.0, grace / 4))
        loop = asyncio.get_running_loop()
        for handle in handles:
            loop.call_later(max(0.0, grace - margin), handle.scheduler.stop_running)

    async def close(self) -> None:
        await self.adapters.close()
        for handle in self._models.values():
            if handle.load_task is not None and not handle.load_task.done():
                handle.load_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await handle.load_task
            await handle.scheduler.close()
            await handle.engine.close()

    # -- catalog ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._models)

    def models(self) -> list[ModelInfo]:
        return [h.engine.info() for h in self._models.values()]

    def resolve(self, name: str | None) -> ModelHandle:
        key = name or self.settings.default_model
        handle = self._models.get(key)
        if handle is None:
            raise ModelNotFound(key, self.names())
        return handle

    @staticmethod
    def is_registry_reference(name: str) -> bool:
        return AdapterModels.handles(name)

    async def acquire(
        self,
        name: str | None,
        tenant: str | None = None,
        *,
        reserve: bool = False,
        visible: Callable[[str], bool] | None = None,
    ) -> ModelHandle:
        """The catalog model ``name``, or the registry version it references (loaded on
        first use) for ``tenant``. With ``reserve`` a registry version stays loaded until
        ``self.adapters.release(handle)`` (see gateway/adapters.py). An unknown name's
        error lists the models ``visible`` allows (the caller's key), as /v1/models does."""
        key = name or self.settings.default_model
        handle = self._models.get(key)
        if handle is not None:
            return handle
        if self.adapters.handles(key):
            try:
                return await self.adapters.acquire(
                    key, tenant or "system", self._models, reserve=reserve
                )
            except ModelNotFound:
                pass
        raise ModelNotFound(key, [n for n in self.names() if visible is None or visible(n)])

    def status(self, tenant: str | None = None) -> dict[str, Any]:
        """Every model's state and queue statistics; with ``tenant``, only the registry
        versions that tenant may use (see ``AdapterModels.loaded``)."""
        out: dict[str, Any] = {}
        for name, handle in [*self._models.items(), *self.adapters.loaded(tenant)]:
            stats = handle.scheduler.stats
            out[name] = {
                "state": handle.engine.state,
                "engine": handle.config.engine,
                "running": stats.running,
                "queued": stats.queued,
                "capacity": handle.scheduler.capacity,
                "queue_size": handle.scheduler.max_queue,
                "completed": stats.completed,
                "cancelled": stats.cancelled,
                "rejected": stats.rejected,
                "timed_out": stats.timed_out,
                "failed": stats.failed,
                "generated_tokens": stats.generated_tokens,
            }
        return out

    def ready(self) -> bool:
        return all(h.engine.ready for h in self._models.values())

    async def generate(
        self, request: GenerationRequest, ctx: RequestContext | None = None
    ) -> GenerationStream:
        return await pipeline.run(self, request, ctx)
