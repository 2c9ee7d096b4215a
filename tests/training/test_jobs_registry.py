"""The job store (real SQLite) and the model registry (real MLflow store on SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genaiops.config import Settings, load_settings
from genaiops.errors import InvalidRequest, NotFound
from genaiops.registry.service import Registry, is_reference
from genaiops.storage.db import Database
from genaiops.training import export
from genaiops.training.jobs import JobStore
from tests.training.conftest import SmolBase


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(Database(f"sqlite:///{tmp_path / 'jobs.db'}"))


def _job(store: JobStore, tenant: str = "acme", reserved_by: str | None = None) -> str:
    job = store.create(tenant, "smollm2-135m-instruct", "bot", "/data/t.jsonl", None,
                       {"epochs": 1}, reserved_by=reserved_by)  # fmt: skip
    return job.id


def test_claims_are_exclusive_and_ordered(store: JobStore) -> None:
    first, second = _job(store), _job(store)
    reserved = _job(store, reserved_by="cli:host:1")
    claimed = store.claim("runner-a")
    assert claimed is not None and claimed.id == first and claimed.status == "running"
    assert store.claim("runner-b", first) is None  # already running
    other = store.claim("runner-b")
    assert other is not None and other.id == second
    assert store.claim("runner-c") is None  # only the reserved job is left
    mine = store.claim("cli:host:1", reserved)
    assert mine is not None and mine.worker == "cli:host:1"


def test_cancel_requeue_and_tenant_scoping(store: JobStore) -> None:
    queued, running = _job(store), _job(store, tenant="globex")
    assert store.claim("r", running) is not None
    assert store.request_cancel(queued).status == "cancelled"  # type: ignore[union-attr]
    after = store.request_cancel(running)
    assert after is not None and after.status == "running" and store.cancel_requested(running)
    assert store.get(running, tenant="acme") is None
    assert [j.id for j in store.list_jobs("globex")] == [running]
    # A runner that stopped beating: the job goes back to the queue to be resumed.
    store.update(running, heartbeat_us=1)
    assert store.requeue_stale(stale_after_s=1) == [running]
    job = store.get(running)
    assert job is not None and job.status == "queued" and job.worker is None
    messages = [e["message"] for e in store.events(running)]
    assert any("resumes from its last checkpoint" in m for m in messages)


def test_last_reported_step(store: JobStore) -> None:
    job, other = _job(store), _job(store)
    assert store.last_step(job) == 0
    for step in (1, 2, 3):
        store.event(job, "info", f"step {step}/9: loss 1.0", {"step": step, "loss": 1.0})
    store.event(job, "info", "resuming from the last checkpoint")
    store.event(other, "info", "step 7/9: loss 1.0", {"step": 7, "loss": 1.0})
    assert store.last_step(job) == 3 and store.last_step(other) == 7


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(load_settings(None, data_dir=tmp_path / "data"))


def _adapter(smol: SmolBase, tmp_path: Path) -> Path:
    """A real (untrained) GGUF adapter for the SmolLM2 base."""
    from peft import get_peft_model_state_dict

    from genaiops.training import base as bases
    from genaiops.training import lora

    base, checkpoint, _ = smol
    model = lora._lora_model(bases.load_model(checkpoint, "fp32"), lora.TrainConfig(r=4, alpha=8))
    path = tmp_path / "adapter.gguf"
    config = model.base_model.model.config
    export.export(get_peft_model_state_dict(model), path, "llama", 8, config.num_hidden_layers,
                  config.num_attention_heads, config.num_key_value_heads)  # fmt: skip
    return path


def test_versions_aliases_and_tenants(registry: Registry, smol: SmolBase, tmp_path: Path) -> None:
    adapter = _adapter(smol, tmp_path)
    base_name = smol[0].name
    v1 = registry.import_adapter("acme", "support-bot", adapter, base_name)
    v2 = registry.import_adapter("acme", "support-bot", adapter, base_name)
    assert (v1.version, v2.version) == (1, 2) and v2.model_id == "support-bot:2"
    assert v1.tags["adapter_sha256"] and v1.base_model == base_name
    registry.set_alias("acme", "support-bot", "champion", 1)
    assert registry.resolve("acme", "support-bot@champion").version == 1
    registry.set_alias("acme", "support-bot", "champion", 2)
    assert registry.resolve("acme", "support-bot@champion").version == 2
    assert registry.resolve("acme", "support-bot:1").version == 1
    assert Path(registry.local_adapter(v1)).read_bytes() == adapter.read_bytes()
    shown = registry.show("acme", "support-bot")
    assert shown["aliases"] == {"champion": 2}
    assert [v["version"] for v in shown["versions"]] == [2, 1]
    # Another tenant sees nothing of acme's; the installation's (system) models are shared.
    with pytest.raises(NotFound):
        registry.resolve("globex", "support-bot@champion")
    assert registry.list_models("globex") == []
    registry.import_adapter("system", "shared-bot", adapter, base_name)
    assert registry.resolve("globex", "shared-bot:1").tenant == "system"
    assert {m["name"] for m in registry.list_models(None)} == {"support-bot", "shared-bot"}
    registry.delete_alias("acme", "support-bot", "champion")
    with pytest.raises(NotFound):
        registry.resolve("acme", "support-bot@champion")
    with pytest.raises(NotFound):
        registry.set_alias("acme", "support-bot", "champion", 9)


def test_corrupt_or_mismatched_adapters_leave_the_registry_unchanged(
    registry: Registry, smol: SmolBase, tmp_path: Path
) -> None:
    adapter = _adapter(smol, tmp_path)
    registry.import_adapter("acme", "bot", adapter, smol[0].name)
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(adapter.read_bytes()[: len(adapter.read_bytes()) // 2])
    with pytest.raises(export.AdapterError):
        registry.import_adapter("acme", "bot", corrupt, smol[0].name)
    with pytest.raises(export.AdapterError, match="not a GGUF LoRA adapter"):
        registry.import_adapter("acme", "bot", smol[0].gguf_path, smol[0].name)
    assert [v["version"] for v in registry.show("acme", "bot")["versions"]] == [1]


def test_names_and_references() -> None:
    assert is_reference("support-bot@champion") and is_reference("support-bot:12")
    assert not is_reference("smollm2-135m-instruct") and not is_reference("Bot@x")
    settings: Settings = load_settings(None)
    with pytest.raises(InvalidRequest, match="invalid model name"):
        Registry(settings).show("acme", "Bad Name")
