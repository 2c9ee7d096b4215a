"""Serving fine-tuned versions from the model registry.

This module owns turning ``support-bot@champion`` or ``support-bot:3`` into a loaded model:

* Resolution asks the registry (in a thread: MLflow is blocking) and keeps the answer for
  ``finetune.alias_ttl_s`` seconds, so moving an alias reaches every replica within that
  time without a restart.
* A version is served as its base model's catalog entry plus its GGUF LoRA adapter
  (``lora_path``) and, for a base without a chat template that was trained on
  conversations, the template it was trained with. Each loaded version is one llama.cpp
  instance; the base weights are memory-mapped, so the file's pages are shared and a
  version costs its KV cache and compute buffers.
* Loading is shared: concurrent first requests for a version wait for one load. At most
  ``finetune.max_loaded_adapters`` versions stay loaded; the least recently used idle one
  is unloaded first, never one with requests running or queued, so requests that started
  on a version finish on it even after its alias has moved.
* A request reserves its version from ``acquire(..., reserve=True)`` until it calls
  ``release``: between the two it runs guardrails, retrieval, tokenisation and rate limits
  before it has a place in the scheduler's queue, and a reserved version is never
  unloaded. The pipeline releases once the request is in the queue (or has failed), from
  which point the scheduler's own running and queued counts keep the version loaded.
  The count of versions loaded may exceed the limit while the extra ones are in use.
* The adapter is checked against its base before loading (``training.export.check``):
  a corrupt or mismatched file is a clear error, never a crash inside llama.cpp.
* ``listing`` names what a tenant can call (each alias and the latest version of its own
  and the installation's registered models) for ``/v1/models``, cached like resolutions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genaiops.config import ModelConfig, Settings
from genaiops.errors import (
    GenaiopsError,
    InvalidRequest,
    ModelNotFound,
    ModelNotReady,
    NotFound,
    UpstreamError,
)

if TYPE_CHECKING:
    from genaiops.gateway.service import ModelHandle
    from genaiops.registry.service import Registry, Version

log = logging.getLogger("genaiops.gateway")


class AdapterModels:
    def __init__(self, settings: Settings, build: Callable[[ModelConfig], ModelHandle]):
        self.settings = settings
        self._build = build
        self._registry: Registry | None = None
        self._aliases: dict[tuple[str, str], tuple[float, Version]] = {}
        self._loaded: OrderedDict[str, ModelHandle] = OrderedDict()
        self._loading: dict[str, asyncio.Task[ModelHandle]] = {}
        # Requests holding each version (loaded or loading): never unloaded while held.
        self._refs: dict[str, int] = {}
        self._listings: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        # Bumped by ``forget``: a lookup that started before a change must not cache what
        # it read once the change has cleared the cache.
        self._epoch = 0

    @staticmethod
    def handles(model: str) -> bool:
        from genaiops.registry.service import is_reference

        return is_reference(model)

    def loaded(self, tenant: str | None = None) -> list[tuple[str, ModelHandle]]:
        """Loaded versions under the names their callers use: every one (a tenant's own
        prefixed "tenant/", so two tenants' "bot:1" stay apart), or only those ``tenant``
        may use, its own after the installation's (its own win a shared name)."""
        rows = [(key.split(".", 1)[0], h) for key, h in self._loaded.items()]
        if tenant is None:
            return [(h.config.name if owner == "system" else f"{owner}/{h.config.name}", h)
                    for owner, h in rows]  # fmt: skip
        shared = [(h.config.name, h) for owner, h in rows if owner == "system"]
        return shared + [(h.config.name, h) for owner, h in rows if owner == tenant != "system"]

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            try:
                from genaiops.registry.service import Registry
            except ImportError as exc:  # pragma: no cover - the finetune extra is missing
                raise InvalidRequest(f"the model registry is not installed: {exc}") from exc
            self._registry = Registry(self.settings)
        return self._registry

    async def resolve(self, reference: str, tenant: str) -> Version:
        key = (tenant, reference)
        cached = self._aliases.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        epoch = self._epoch
        try:
            version = await asyncio.to_thread(self.registry.resolve, tenant, reference)
        except NotFound as exc:
            raise ModelNotFound(reference, []) from exc
        except GenaiopsError:
            raise
        except Exception as exc:
            # The registry is down (a locked SQLite store, an unreachable MLflow server):
            # keep serving what the reference last resolved to rather than failing every
            # request to a version that is already known, and ask again next time.
            if cached is None:
                raise UpstreamError(f"the model registry is unavailable: {exc}") from exc
            log.warning(
                "registry lookup of %s failed, serving the last known version: %s", reference, exc
            )
            return cached[1]
        if epoch == self._epoch:
            ttl = self.settings.finetune.alias_ttl_s
            self._aliases[key] = (time.monotonic() + ttl, version)
        return version

    async def listing(self, tenant: str) -> list[dict[str, Any]]:
        """``{"id", "owned_by", "name", "version"}`` for every alias and the latest version
        of the registered models ``tenant`` can call (a tenant's own name shadows the
        installation's). Empty when nothing was ever registered or the registry is down:
        listing models must not fail because of it."""
        cached = self._listings.get(tenant)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        uri = self.settings.mlflow_uri()
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
            return []  # no store yet: nothing registered (and none created just to look)
        from genaiops.security.principal import SYSTEM_TENANT

        owners = list(dict.fromkeys((tenant, SYSTEM_TENANT)))
        epoch = self._epoch
        try:
            models = await asyncio.to_thread(
                lambda: [m for owner in owners for m in self.registry.list_models(owner)]
            )
        except Exception as exc:  # a registry outage must not break /v1/models
            log.warning("listing registered models failed: %s", exc)
            return []
        out: dict[str, dict[str, Any]] = {}
        for m in models:
            refs = [(f"{m['name']}@{alias}", v) for alias, v in sorted(m["aliases"].items())]
            if m["latest_version"]:
                refs.append((f"{m['name']}:{m['latest_version']}", m["latest_version"]))
            for ref, version in refs:
                out.setdefault(
                    ref, {"id": ref, "owned_by": m["tenant"], "name": m["name"], "version": version}
                )
        listing = list(out.values())
        if epoch == self._epoch:
            ttl = self.settings.finetune.alias_ttl_s
            self._listings[tenant] = (time.monotonic() + ttl, listing)
        return listing

    async def acquire(
        self,
        reference: str,
        tenant: str,
        catalog: Mapping[str, ModelHandle],
        *,
        reserve: bool = False,
    ) -> ModelHandle:
        """The loaded version ``reference`` names (loading it on first use). With
        ``reserve`` the version stays loaded until ``release(handle)``; without it (a
        lookup that sends the model no work) it may be unloaded at any later load."""
        version = await self.resolve(reference, tenant)
        key = version.identity
        # Held while it loads too, so that another version's load cannot unload it between
        # the end of its load and this request's turn to run.
        self._refs[key] = self._refs.get(key, 0) + 1
        try:
            handle = self._loaded.get(key)
            if handle is not None:
                self._loaded.move_to_end(key)
            else:
                task = self._loading.get(key)
                if task is None:
                    task = asyncio.create_task(self._load(key, version, catalog))
                    self._loading[key] = task
                    task.add_done_callback(lambda _: self._loading.pop(key, None))
                handle = await asyncio.shield(task)
        except BaseException:
            self._unref(key)
            raise
        if not reserve:
            self._unref(key)
        return handle

    def release(self, handle: ModelHandle) -> None:
        """End a reservation taken by ``acquire(..., reserve=True)``; a no-op for a model
        that is not a registry version."""
        for key, loaded in self._loaded.items():
            if loaded is handle:
                self._unref(key)
                return

    def _unref(self, key: str) -> None:
        left = self._refs.get(key, 0) - 1
        if left > 0:
            self._refs[key] = left
        else:
            self._refs.pop(key, None)

    async def _load(
        self, key: str, version: Version, catalog: Mapping[str, ModelHandle]
    ) -> ModelHandle:
        from genaiops.engines import bundled
        from genaiops.training.export import AdapterError, check

        base = catalog.get(version.base_model)
        if base is None:
            raise ModelNotReady(
                f"{version.model_id} is fine-tuned from {version.base_model!r}, which this "
                "server does not serve"
            )
        template = version.tags.get("chat_template") or base.config.chat_template
        description = f"{version.name} v{version.version}, fine-tuned from {version.base_model}"
        if version.tags.get("engine") == "transformers":
            # The adapter merged into a transformers checkpoint (``merged`` jobs).
            merged = await asyncio.to_thread(
                self.registry.local_artifact, version, version.tags["merged_uri"]
            )
            config = ModelConfig(
                name=version.model_id, engine="transformers", path=merged,
                context_length=base.config.context_length, chat_template=template,
                description=description + " (merged, transformers)",
            )  # fmt: skip
        else:
            adapter = await asyncio.to_thread(self.registry.local_adapter, version)
            base_path = bundled.resolve_path(
                base.config.bundled, base.config.path, self.settings.models_dir()
            )
            try:
                await asyncio.to_thread(check, adapter, base_path)
            except AdapterError as exc:
                # A stored version that no longer loads is the installation's fault, not
                # the caller's: 503 naming the version, not a 400 about their request.
                log.error("registry version %s: %s", version.model_id, exc.message)
                raise ModelNotReady(
                    f"{version.model_id} cannot be served: its stored adapter is damaged "
                    f"({exc.message}); an operator must re-import or re-train it"
                ) from exc
            config = base.config.model_copy(
                update={"name": version.model_id, "lora_path": adapter,
                        "chat_template": template, "description": description}
            )  # fmt: skip
        handle = self._build(config)
        handle.scheduler.start()
        try:
            await handle.engine.start()
        except Exception as exc:
            await handle.scheduler.close()
            raise ModelNotReady(f"{version.model_id} failed to load: {exc}") from exc
        self._loaded[key] = handle
        await self._evict()
        return handle

    async def _evict(self) -> None:
        limit = self.settings.finetune.max_loaded_adapters
        for key in list(self._loaded):
            if len(self._loaded) <= limit:
                return
            # Another load evicting at the same time may have closed it meanwhile.
            handle = self._loaded.get(key)
            if handle is None:
                continue
            stats = handle.scheduler.stats
            if self._refs.get(key) or stats.running or stats.queued:
                continue
            del self._loaded[key]
            await handle.scheduler.close()
            await handle.engine.close()

    async def close(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        for handle in self._loaded.values():
            await handle.scheduler.close()
            await handle.engine.close()
        self._loaded.clear()

    def forget(self) -> None:
        """Drop cached alias resolutions (after an alias change in this process)."""
        self._epoch += 1
        self._aliases.clear()
        self._listings.clear()
