"""Serving registry versions (gateway/adapters.py) in isolation: a small registry that
answers from a dict and a one-token-per-tick engine stand in for MLflow and llama.cpp, so
loading, eviction and the reservation of a version by a request in flight are observed
exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from genaiops.config import ModelConfig, Settings, load_settings
from genaiops.engines.base import Finished
from genaiops.engines.scheduler import Scheduler
from genaiops.errors import ModelNotReady, UpstreamError
from genaiops.gateway.adapters import AdapterModels
from genaiops.gateway.service import ModelHandle
from genaiops.registry.service import Version
from tests.unit.test_scheduler import TickEngine, drain, job

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class DictRegistry:
    """Resolves "bot@champion" from a movable alias; versions are merged checkpoints."""

    def __init__(self) -> None:
        self.champion = 1
        self.down = False

    def resolve(self, tenant: str, reference: str) -> Version:
        if self.down:
            raise OSError("database is locked")
        number = self.champion if reference.endswith("@champion") else int(reference[-1])
        return Version(tenant, "bot", number, "base", f"file:///v{number}", None, (),
                       tags={"engine": "transformers", "merged_uri": f"/v{number}"})  # fmt: skip

    def local_artifact(self, version: Version, uri: str) -> Path:
        return Path(uri)


def _build(settings: Settings, built: list[ModelHandle]):  # type: ignore[no-untyped-def]
    def build(config: ModelConfig) -> ModelHandle:
        scheduler = Scheduler(TickEngine(), max_queue=4, timeout_s=5, retry_after_s=1)
        handle = ModelHandle(config, scheduler.engine, scheduler)
        built.append(handle)
        return handle

    return build


@pytest.fixture
def models(tmp_path: Path) -> tuple[AdapterModels, DictRegistry, dict[str, ModelHandle]]:
    settings = load_settings(
        None, data_dir=tmp_path, finetune={"max_loaded_adapters": 1, "alias_ttl_s": 0}
    )
    built: list[ModelHandle] = []
    adapters = AdapterModels(settings, _build(settings, built))
    registry = DictRegistry()
    adapters._registry = registry  # type: ignore[assignment]
    base = ModelConfig(name="base", engine="llama_cpp", path=str(tmp_path / "base.gguf"))
    catalog = {"base": ModelHandle(base, TickEngine(), None)}  # type: ignore[arg-type]
    return adapters, registry, catalog


async def test_a_reserved_version_survives_an_alias_move_until_released(
    models: tuple[AdapterModels, DictRegistry, dict[str, ModelHandle]],
) -> None:
    adapters, registry, catalog = models
    # A request resolves bot@champion (v1) and, before it reaches the scheduler, the alias
    # moves and another request loads v2: with one loaded version allowed, v1 would be
    # the one to unload.
    first = await adapters.acquire("bot@champion", "acme", catalog, reserve=True)
    registry.champion = 2
    second = await adapters.acquire("bot@champion", "acme", catalog, reserve=True)
    assert (first.config.name, second.config.name) == ("bot:1", "bot:2")
    assert sorted(name for name, _ in adapters.loaded("acme")) == ["bot:1", "bot:2"]
    events = await drain(first.scheduler.submit(job(3)))
    assert events[-1] == Finished("length", 1, 3)
    adapters.release(first)
    adapters.release(second)
    # Released and idle: the next load unloads it, and its scheduler refuses new work at
    # once instead of queueing a request that nothing would serve.
    third = await adapters.acquire("bot:3", "acme", catalog)
    assert "bot:1" not in [name for name, _ in adapters.loaded("acme")]
    assert third.config.name == "bot:3"
    with pytest.raises(ModelNotReady):
        first.scheduler.submit(job(1))
    await adapters.close()


async def test_an_unreserved_lookup_does_not_pin_a_version(
    models: tuple[AdapterModels, DictRegistry, dict[str, ModelHandle]],
) -> None:
    adapters, _registry, catalog = models
    await adapters.acquire("bot:1", "acme", catalog)
    await adapters.acquire("bot:2", "acme", catalog)
    assert [name for name, _ in adapters.loaded("acme")] == ["bot:2"]
    # Every tenant's versions, for the installation's administrator: named with their owner.
    assert [name for name, _ in adapters.loaded()] == ["acme/bot:2"]
    assert adapters.loaded("globex") == []
    # Releasing a catalog model (not from the registry) is a no-op.
    adapters.release(catalog["base"])
    await adapters.close()


async def test_a_closed_scheduler_refuses_and_fails_what_was_queued() -> None:
    s = Scheduler(TickEngine(), max_queue=2, timeout_s=30, retry_after_s=1)
    queued = s.submit(job(2))  # never started: nothing serves it
    await s.close()
    with pytest.raises(ModelNotReady):
        await drain(queued)
    with pytest.raises(ModelNotReady):
        s.submit(job(1))
    assert s.stats.queued == 0


async def test_a_registry_outage_keeps_serving_the_last_known_version(
    models: tuple[AdapterModels, DictRegistry, dict[str, ModelHandle]],
) -> None:
    adapters, registry, catalog = models
    known = await adapters.resolve("bot@champion", "acme")
    registry.down = True
    # The alias cache has expired (alias_ttl_s = 0): the lookup fails, the last answer holds.
    assert await adapters.resolve("bot@champion", "acme") == known
    handle = await adapters.acquire("bot@champion", "acme", catalog)
    assert handle.config.name == "bot:1"
    # A reference never resolved before has nothing to fall back on: a clear 502.
    with pytest.raises(UpstreamError, match="registry is unavailable"):
        await adapters.resolve("bot:2", "acme")
    registry.down = False
    registry.champion = 2
    assert (await adapters.resolve("bot@champion", "acme")).version == 2
