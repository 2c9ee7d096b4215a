"""The job store (real SQLite) and the model registry (real MLflow store on SQLite)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from genaiops.config import Settings, load_settings
from genaiops.errors import InvalidRequest, NotFound, StoreUnavailable
from genaiops.registry.locking import RegistryLock
from genaiops.registry.service import Registry, is_reference
from genaiops.storage.db import Database
from genaiops.training import export
from genaiops.training.jobs import JobStore, now_us
from tests.training.conftest import SmolBase, hold_registry_lock


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
    # Two replicas saw it stale; the first requeued it and a runner claimed it again
    # (a fresh heartbeat): the second's requeue leaves the running job alone.
    assert store.claim("r2", running) is not None
    cutoff = now_us() - 1_000_000
    assert not store.requeue(running, "stale", beat_before_us=cutoff)
    job = store.get(running)
    assert job is not None and job.status == "running" and job.worker == "r2"
    assert [e["message"] for e in store.events(running)].count("stale") == 0


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
    registry.set_alias("acme", "support-bot", "canary", 2)
    shown = registry.show("acme", "support-bot")
    assert shown["aliases"] == {"champion": 2, "canary": 2}
    # Each version names the aliases that point at it.
    assert [(v["version"], sorted(v["aliases"])) for v in shown["versions"]] == [
        (2, ["canary", "champion"]),
        (1, []),
    ]
    registry.delete_alias("acme", "support-bot", "canary")
    # A model whose first version never came (killed between MLflow's two calls) is not
    # listed: it has nothing to serve.
    registry.client.create_registered_model(
        registry.qualified("acme", "empty-bot"), tags={"tenant": "acme", "name": "empty-bot"}
    )
    assert {m["name"] for m in registry.list_models("acme")} == {"support-bot"}
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
    # Deleting an alias that is not there is a 404, not a silent success.
    with pytest.raises(NotFound, match="no alias 'champion'"):
        registry.delete_alias("acme", "support-bot", "champion")
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


def _gguf_adapter(path: Path, tensors: list[tuple[str, Any]]) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 16.0)
    for name, array in tensors:
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _zeros(*shape: int, dtype: Any = None) -> Any:
    import numpy as np

    return np.zeros(shape, dtype or np.float32)


PAIR = [("blk.0.attn_q.weight.lora_a", _zeros(8, 576)),
        ("blk.0.attn_q.weight.lora_b", _zeros(576, 8))]  # fmt: skip


@pytest.mark.parametrize(
    ("tensors", "reason"),
    [
        (PAIR + [("blk.1.attn_q.weight.lora_b", _zeros(576, 8))], "lacks its lora_a"),
        (PAIR + [("blk.0.attn_q.weight.scale", _zeros(4))], "is not a LoRA tensor"),
        ([("blk.0.attn_q.weight.lora_a", _zeros(576)), PAIR[1]], "is not a matrix"),
        (
            [
                ("blk.0.attn_norm.weight.lora_a", _zeros(8, 576)),
                ("blk.0.attn_norm.weight.lora_b", _zeros(576, 8)),
            ],
            "no matrix",
        ),  # fmt: skip
        ([(n, a.astype("int32")) for n, a in PAIR], "stored as I32"),
        ([(PAIR[0][0], PAIR[0][1] + float("nan")), PAIR[1]], "NaN"),
    ],
    ids=["orphan-b", "stray-tensor", "vector", "norm-target", "int32", "nan"],
)
def test_adapters_llama_cpp_would_crash_on_are_refused(
    registry: Registry, smol: SmolBase, tmp_path: Path, tensors: list[Any], reason: str
) -> None:
    """Each of these passed a looser check and took the serving process down with a
    segmentation fault at the first request."""
    adapter = _gguf_adapter(tmp_path / "bad.gguf", tensors)
    with pytest.raises(export.AdapterError, match=reason):
        registry.import_adapter("acme", "bot", adapter, smol[0].name)
    assert registry.list_models("acme") == []
    good = _gguf_adapter(tmp_path / "good.gguf", PAIR)
    assert export.check(good, smol[0].gguf_path).tensors == 1


def test_names_and_references() -> None:
    assert is_reference("support-bot@champion") and is_reference("support-bot:12")
    assert not is_reference("smollm2-135m-instruct") and not is_reference("Bot@x")
    settings: Settings = load_settings(None)
    with pytest.raises(InvalidRequest, match="invalid model name"):
        Registry(settings).show("acme", "Bad Name")


def test_mlflow_telemetry_is_off_whichever_registry_call_comes_first(tmp_path: Path) -> None:
    # MLflow decides at import whether to send telemetry; the registry's first call may be
    # one that imports MLflow before any client exists.
    script = (
        "from genaiops.config import load_settings\n"
        "from genaiops.errors import NotFound\n"
        "from genaiops.registry.service import Registry\n"
        f"registry = Registry(load_settings(None, data_dir={str(tmp_path)!r}))\n"
        "try:\n"
        "    registry.get('acme', 'bot', 1)\n"
        "except NotFound:\n"
        "    pass\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "from mlflow.telemetry.utils import is_telemetry_disabled\n"
        "print(get_telemetry_client() is None, is_telemetry_disabled())\n"
    )
    ci_markers = {"PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL",
                  "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ci_markers}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_a_job_registers_one_version_even_when_resumed(registry: Registry) -> None:
    # A worker killed after registering and before finishing the job is resumed and
    # registers again: the job's version is found by its tag and reused.
    tags = {"job_id": "ftjob-1", "run_id": "r1"}
    first = registry.register("acme", "bot", "/jobs/1/adapter.gguf", None, "smol", tags)
    again = registry.register("acme", "bot", "/jobs/1/adapter.gguf", None, "smol", tags)
    other = registry.register("acme", "bot", "/jobs/2/adapter.gguf", None, "smol",
                              {"job_id": "ftjob-2"})  # fmt: skip
    assert (first.version, again.version, other.version) == (1, 1, 2)
    assert [v["version"] for v in registry.show("acme", "bot")["versions"]] == [2, 1]


def test_checkpoints_are_listed_once_per_step_and_resolved_in_their_tenant(
    tmp_path: Path,
) -> None:
    settings = load_settings(None, data_dir=tmp_path / "data")
    db = Database(settings.database_url())
    db.migrate()
    store = JobStore(db)
    job = _job(store)
    for step, epoch in ((10, 1), (10, 1), (20, 2)):  # a resumed run records step 10 again
        record = {"step": step, "epoch": epoch, "uri": f"/x/step-{step}.gguf", "train_loss": 1.0}
        store.event(job, "info", f"checkpoint at step {step}", {"checkpoint": record})
    store.event(job, "info", "step 11/20: loss 1.0", {"step": 11, "loss": 1.0})
    assert [c["step"] for c in store.checkpoints(job)] == [20, 10]
    registry = Registry(settings)
    found = registry.resolve("acme", f"{job}:ckpt-step-10")
    assert found.model_id == f"{job}:ckpt-step-10" and found.adapter_uri == "/x/step-10.gguf"
    assert found.base_model == "smollm2-135m-instruct" and found.tenant == "acme"
    assert is_reference(f"{job}:ckpt-step-10")
    with pytest.raises(NotFound):
        registry.resolve("globex", f"{job}:ckpt-step-10")  # another tenant's job
    with pytest.raises(NotFound):
        registry.resolve("acme", f"{job}:ckpt-step-15")


def test_deleting_versions_and_models(registry: Registry) -> None:
    def add(n: int) -> int:
        return registry.register("acme", "bot", f"/jobs/{n}/a.gguf", None, "smol", {}).version

    assert [add(n) for n in (1, 2, 3)] == [1, 2, 3]
    registry.set_alias("acme", "bot", "champion", 2)
    # A version an alias serves is not deleted behind the alias's back.
    with pytest.raises(InvalidRequest, match="bot@champion") as refused:
        registry.delete_version("acme", "bot", 2)
    assert refused.value.code == "version_in_use"
    assert registry.resolve("acme", "bot@champion").version == 2
    assert registry.delete_version("acme", "bot", 3).version == 3
    with pytest.raises(NotFound):
        registry.resolve("acme", "bot:3")
    with pytest.raises(NotFound):
        registry.delete_version("acme", "bot", 3)
    # Numbers are never reused within a model: the next version is 4.
    assert add(4) == 4
    gone = registry.delete_version("acme", "bot", 2, force=True)
    assert gone.aliases == ("champion",)
    shown = registry.show("acme", "bot")
    assert shown["aliases"] == {} and [v["version"] for v in shown["versions"]] == [4, 1]
    # Another tenant cannot delete acme's model; a model with aliases needs force.
    with pytest.raises(NotFound):
        registry.delete_model("globex", "bot")
    registry.set_alias("acme", "bot", "prod", 4)
    with pytest.raises(InvalidRequest, match="bot@prod") as refused:
        registry.delete_model("acme", "bot")
    assert refused.value.code == "model_in_use"
    assert registry.delete_model("acme", "bot", force=True) == [4, 1]
    assert registry.list_models("acme") == []
    # Registered again, the name starts over, and the new version 1 is told apart from
    # the old one by its identity (what loaded models and local copies are keyed on).
    again = registry.register("acme", "bot", "/jobs/9/a.gguf", "run-9", "smol", {})
    assert again.version == 1 and again.identity.endswith("-run-9")


def test_an_alias_set_while_its_version_is_deleted_is_never_lost(registry: Registry) -> None:
    """delete_version checks for aliases, then deletes: an alias set in between must not
    be reported as set and then vanish with the version (MLflow drops a deleted version's
    aliases). The two requests hold two Registry objects, as a server's requests do."""
    registry.register("acme", "bot", "/jobs/1/a.gguf", None, "smol", {})
    checked, aliasing = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}
    real_get = registry.get

    def get_then_pause(tenant: str, name: str, version: int) -> Any:
        found = real_get(tenant, name, version)
        if threading.current_thread().name == "deleter":
            checked.set()  # the check passed: no alias yet
            outcome["aliasing started"] = aliasing.wait(60)
            time.sleep(0.3)  # room for the other request to write its alias
        return found

    registry.get = get_then_pause  # type: ignore[method-assign]

    def set_alias() -> None:
        outcome["check passed"] = checked.wait(60)
        aliasing.set()
        try:
            outcome["alias"] = Registry(registry.settings).set_alias("acme", "bot", "champion", 1)
        except NotFound as exc:
            outcome["alias"] = exc

    deleter = threading.Thread(target=registry.delete_version, args=("acme", "bot", 1),
                               name="deleter")  # fmt: skip
    setter = threading.Thread(target=set_alias)
    for thread in (deleter, setter):
        thread.start()
    for thread in (deleter, setter):
        thread.join(120)
        assert not thread.is_alive()
    registry.get = real_get  # type: ignore[method-assign]
    assert outcome["check passed"] and outcome["aliasing started"]
    # The alias request waited for the deletion and was told the version is gone.
    assert isinstance(outcome["alias"], NotFound)
    assert registry.list_models("acme") == [] or registry.show("acme", "bot")["aliases"] == {}


_SET_ALIAS = """
import json, sys
from genaiops.config import load_settings
from genaiops.errors import NotFound
from genaiops.registry.service import Registry
registry = Registry(load_settings(None, data_dir=sys.argv[1]))
registry.show("acme", "bot")  # MLflow loaded and the store open: the change is quick
print("ready", flush=True)
sys.stdin.readline()
try:
    print(json.dumps({"alias": registry.set_alias("acme", "bot", "champion", 1).aliases}))
except NotFound as exc:
    print(json.dumps({"not_found": str(exc)}))
"""


def test_a_change_from_another_process_waits_for_the_one_under_way(
    registry: Registry,
) -> None:
    """The same race as above between the server and a CLI command (two processes): the
    command sets the alias while the server is between its check and its deletion. It
    must wait, then be told the version is gone, instead of reporting an alias that the
    deletion then drops."""
    registry.register("acme", "bot", "/jobs/1/a.gguf", None, "smol", {})
    other = subprocess.Popen(
        [sys.executable, "-c", _SET_ALIAS, str(registry.settings.data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout is not None and other.stdin is not None
    assert other.stdout.readline().strip() == "ready"
    real_get = registry.get

    def get_then_pause(tenant: str, name: str, version: int) -> Any:
        found = real_get(tenant, name, version)
        assert other.stdin is not None
        other.stdin.write("go\n")
        other.stdin.flush()
        time.sleep(1.0)  # room for the other process to write its alias
        return found

    registry.get = get_then_pause  # type: ignore[method-assign]
    try:
        registry.delete_version("acme", "bot", 1)
    finally:
        registry.get = real_get  # type: ignore[method-assign]
    out, _ = other.communicate(timeout=60)
    assert other.returncode == 0
    assert json.loads(out) == {"not_found": "model 'bot' has no version 1"}
    assert registry.list_models("acme") == []


def test_a_registry_held_too_long_by_another_process_is_a_clear_busy_error(
    registry: Registry,
) -> None:
    registry.register("acme", "bot", "/jobs/1/a.gguf", None, "smol", {})
    holder = hold_registry_lock(data_dir=registry.settings.data_dir)
    try:
        registry._writing = RegistryLock(registry.settings, timeout_s=0.3)
        with pytest.raises(StoreUnavailable, match="another process") as busy:
            registry.set_alias("acme", "bot", "champion", 1)
        assert busy.value.kind == "unavailable"  # 503 over HTTP
        assert registry.show("acme", "bot")["aliases"] == {}
    finally:
        holder.communicate("\n", timeout=30)
    assert registry.set_alias("acme", "bot", "champion", 1).aliases == ("champion",)


def test_a_tenant_with_its_own_model_is_never_served_the_installations(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genaiops.registry import service

    def add(tenant: str, n: int) -> None:
        registry.register(tenant, "bot", f"/jobs/{tenant}-{n}/a.gguf", f"run-{tenant}-{n}",
                          "smol", {})  # fmt: skip

    for n in range(3):
        add("acme", n)
    for n in range(4):
        add("system", n)
    registry.set_alias("system", "bot", "live", 4)
    registry.register("system", "helper", "/jobs/h/a.gguf", "run-h", "smol", {})
    assert registry.resolve("acme", "bot:3").tenant == "acme"
    # Versions and aliases acme's bot lacks are not looked up in the system's bot.
    with pytest.raises(NotFound):
        registry.resolve("acme", "bot:4")
    with pytest.raises(NotFound):
        registry.resolve("acme", "bot@live")
    # A name only the installation has is the installation's.
    assert registry.resolve("acme", "helper:1").tenant == "system"
    assert registry.resolve("globex", "bot@live").tenant == "system"
    # Listing pages through MLflow's answers; a tenant name as long as keys allow is fine.
    monkeypatch.setattr(service, "_PAGE", 2)
    long_tenant = "t" * 64
    for n in range(5):
        registry.register(long_tenant, f"m{n}", f"/jobs/m{n}/a.gguf", None, "smol", {})
    assert [m["name"] for m in registry.list_models(long_tenant)] == [f"m{n}" for n in range(5)]
    assert len(registry.list_models(None)) == 8  # acme bot, system bot and helper, 5 more


def test_a_failed_first_version_leaves_no_empty_model(registry: Registry) -> None:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        registry.register("acme", "bot", "/jobs/1/adapter.gguf", None, "smol", {"../x": "1"})
    assert registry.list_models("acme") == []
    with pytest.raises(NotFound):
        registry.show("acme", "bot")
    # A model that has versions keeps them when a later version fails.
    registry.register("acme", "bot", "/jobs/1/adapter.gguf", None, "smol", {})
    with pytest.raises(MlflowException):
        registry.register("acme", "bot", "/jobs/2/adapter.gguf", None, "smol", {"../x": "1"})
    assert [v["version"] for v in registry.show("acme", "bot")["versions"]] == [1]


def test_a_failure_of_the_machine_is_not_blamed_on_the_request(tmp_path: Path) -> None:
    from genaiops.training import runner

    settings = load_settings(None, data_dir=tmp_path / "data")
    db = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    store = JobStore(db)
    job_id = _job(store)
    # The job's work folder cannot be created (a file stands where its parent should be).
    (settings.data_dir / "training").mkdir(parents=True)
    (settings.data_dir / "training" / "jobs").write_text("")
    claimed = store.claim("test", job_id)
    assert claimed is not None
    final = runner.run(settings, db, claimed)
    assert final.status == "failed"
    assert final.error is not None and final.error["code"] == "server_error"
    full = OSError(errno.ENOSPC, "No space left on device")
    assert runner.error_code(full) == "disk_full"
    assert runner.error_code(ValueError("bad")) == "invalid_request"
    assert runner.error_code(InvalidRequest("bad", code="invalid_training_file")) == (
        "invalid_training_file"
    )


def test_a_training_file_edited_while_queued_is_not_trained_on(tmp_path: Path) -> None:
    from genaiops.training import runner

    settings = load_settings(None, data_dir=tmp_path / "data")
    db = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    store = JobStore(db)
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n')
    validated = runner.datasets.file_sha256(data)
    job = store.create("acme", "smollm2-135m-instruct", "bot", str(data), None,
                       {"epochs": 1}, dataset_sha256=validated)  # fmt: skip
    data.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n')
    claimed = store.claim("test", job.id)
    assert claimed is not None
    final = runner.run(settings, db, claimed)
    assert final.status == "failed" and final.error is not None
    assert final.error["code"] == "training_file_changed"
    assert "changed after the job was created" in final.error["message"]


def test_job_object_has_openai_types(store: JobStore) -> None:
    job_id = _job(store)
    queued = store.public(store.get(job_id))  # type: ignore[arg-type]
    assert queued["started_at"] is None and queued["estimated_finish"] is None
    assert queued["error"] is None
    claimed = store.claim("runner")
    assert claimed is not None
    running = store.public(claimed)
    assert running["started_at"] == claimed.started_us // 1_000_000  # type: ignore[operator]
    assert isinstance(running["started_at"], int) and running["estimated_finish"] is None
    # The last step's ETA gives the estimated finish while the job runs.
    store.event(job_id, "info", "step 1/9: loss 1.0", {"step": 1, "loss": 1.0, "eta_s": 120.4})
    reported = store.events(job_id, limit=1)[0]["created_at"]
    estimate = store.public(store.get(job_id))["estimated_finish"]  # type: ignore[arg-type]
    assert isinstance(estimate, int) and estimate - reported in (120, 121)
    store.finish(job_id, "failed", error={"code": "server_error", "message": "disk error"})
    failed = store.public(store.get(job_id))  # type: ignore[arg-type]
    assert failed["error"] == {"code": "server_error", "message": "disk error", "param": None}
    assert failed["estimated_finish"] is None and isinstance(failed["finished_at"], int)


def test_unknown_page_cursors_are_not_found(store: JobStore) -> None:
    first, second = _job(store), _job(store)
    other = _job(store, tenant="globex")
    assert [j.id for j in store.list_jobs("acme", after=second)] == [first]
    for tenant, after in (("acme", "ftjob-missing"), ("acme", other), (None, "ftjob-missing")):
        with pytest.raises(NotFound) as exc:
            store.list_jobs(tenant, after=after)
        assert exc.value.param == "after"
    events = store.events(first)
    assert store.events(first, after=int(events[0]["id"].removeprefix("ftevent-"))) == events[1:]
    foreign = int(store.events(second)[0]["id"].removeprefix("ftevent-"))
    for cursor in (10**9, foreign):
        with pytest.raises(NotFound) as exc:
            store.events(first, after=cursor)
        assert exc.value.param == "after"


def test_the_training_lock_outlives_a_killed_server_while_its_worker_runs(
    tmp_path: Path,
) -> None:
    """The worker shares the lock its server took: the server SIGKILLed, no second job may
    start beside the worker still training."""
    from genaiops.training import runner

    settings = load_settings(None, data_dir=tmp_path / "data")
    script = f"""
import os, signal, subprocess, sys
from genaiops.config import load_settings
from genaiops.training import runner
settings = load_settings(None, data_dir={str(settings.data_dir)!r})
with runner.training_slot(settings) as lock:
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              pass_fds=(lock,), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    print(worker.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""
    server = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert server.returncode == -9
    worker = int(server.stdout.split()[0])
    try:
        with runner.training_slot(settings, wait=False) as lock:
            assert lock is None  # the worker still holds it
    finally:
        os.kill(worker, 9)
    deadline = time.monotonic() + 10
    while True:
        with runner.training_slot(settings, wait=False) as lock:
            if lock is not None:
                break
        assert time.monotonic() < deadline, "the lock was never released"
        time.sleep(0.1)


def test_replicas_downloading_one_remote_artifact_at_once_share_one_copy(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a remote artifact store, every replica sharing the data directory downloads a
    newly served version on its first request: none removes or moves another's partial
    copy, and all end up reading one whole file."""
    import mlflow.artifacts

    version = registry.register("acme", "bot", "/jobs/1/a.gguf", None, "smol", {})
    barrier = threading.Barrier(3)

    def download(uri: str, dst_path: str) -> str:
        # The store's download, slow enough for the three to overlap.
        barrier.wait(30)
        target = Path(dst_path) / uri.rsplit("/", 1)[-1]
        with target.open("wb") as out:
            for _ in range(20):
                out.write(b"x" * 1000)
                time.sleep(0.005)
        return str(target)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", download)
    uri = "mlflow-artifacts:/1/abc/artifacts/adapter.gguf"
    paths: list[Path] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            paths.append(Registry(registry.settings).local_artifact(version, uri))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(set(paths)) == 1 and paths[0].read_bytes() == b"x" * 20_000
    # No partial download is left beside it.
    assert [p.name for p in paths[0].parent.iterdir()] == ["adapter.gguf"]
