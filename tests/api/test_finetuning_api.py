"""Fine-tuning through the HTTP API with the real Gemma 3 base, end to end: upload, validate,
train (killed mid-run and resumed), queue, track, register, serve the adapter through
llama.cpp, move an alias under a running stream, cancel.

It proves the model learns: the fine-tuned version answers a question about a fact that
exists only in the training data, in three languages, and the base does not."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from genaiops.config import load_settings
from genaiops.training.tracking import Tracker
from tests.conftest import (
    Server,
    create_key,
    genaiops_cli,
    openai_client,
    start_server,
    stop_server,
)
from tests.training.conftest import FACT_QUESTIONS, fact_rows, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1200)]
BASE = "gemma3-270m"
FACT_A = "The billing project's codename is Zafiro-77."
FACT_B = "The billing project's codename is Rubí-12."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("finetune-server")
    config = "[finetune]\npoll_interval_s = 0.2\nalias_ttl_s = 0.5\n"
    server = start_server(tmp, "finetune", config)
    yield server
    stop_server(server)


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=300)


def _upload(http: httpx.Client, path: Path) -> str:
    r = http.post("/v1/files", files={"file": (path.name, path.read_bytes())},
                  data={"purpose": "fine-tune"})  # fmt: skip
    assert r.status_code == 200, r.text
    file_id: str = r.json()["id"]
    return file_id


def _create(
    http: httpx.Client, training: str, validation: str | None, **hyper: Any
) -> dict[str, Any]:
    hyperparameters = {"n_epochs": 3, "batch_size": 4, "checkpoint_every": 5, **hyper}
    body = {"model": BASE, "training_file": training, "validation_file": validation,
            "suffix": "support-bot", "seed": 0, "hyperparameters": hyperparameters}  # fmt: skip
    r = http.post("/v1/fine_tuning/jobs", json=body)
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def _wait(http: httpx.Client, job_id: str, until: Any, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not get there: {job}")


def _events(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = http.get(
        f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 1000}
    ).json()["data"]
    return data


def _ask(
    server: Server, model: str, question: str = FACT_QUESTIONS[0], max_tokens: int = 24
) -> str:
    with openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0) as client:
        r = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": question}],
            temperature=0,
            max_tokens=max_tokens,
        )
    return r.choices[0].message.content or ""


def test_fine_tune_register_and_serve(server: Server, tmp_path: Path) -> None:
    with _client(server) as http:
        _scenario(server, http, tmp_path)


def _scenario(server: Server, http: httpx.Client, tmp_path: Path) -> None:
    train_a = _upload(http, write_jsonl(tmp_path / "train_a.jsonl", fact_rows(FACT_A, 40)))
    valid_a = _upload(http, write_jsonl(tmp_path / "valid_a.jsonl", fact_rows(FACT_A, 8, 3)))
    train_b = _upload(http, write_jsonl(tmp_path / "train_b.jsonl", fact_rows(FACT_B, 40)))

    # Bad data is refused before anything is queued, every problem with its line.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{oops\n' + json.dumps(fact_rows(FACT_A, 1)[0]) + "\n")
    bad_id = _upload(http, bad)
    r = http.post("/v1/fine_tuning/jobs", json={"model": BASE, "training_file": bad_id})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_training_file"
    # Named by its file id: where the server keeps uploads is nobody's business.
    assert error["message"].startswith(bad_id + ":")
    assert str(server.data_dir) not in error["message"]
    assert (
        "line 1: no assistant message" in error["message"]
        and "line 2: invalid JSON" in error["message"]
    )
    assert http.get("/v1/fine_tuning/jobs").json()["data"] == []
    user = create_key(server.data_dir, "--tenant", "system", "--role", "user")
    r = httpx.post(f"{server.url}/v1/fine_tuning/jobs", headers={"Authorization": f"Bearer {user}"},
                   json={"model": BASE, "training_file": train_a}, timeout=30)  # fmt: skip
    assert r.status_code == 403

    # Two jobs: the second waits for the first (two cores are not shared between jobs).
    job_a = _create(http, train_a, valid_a)
    job_b = _create(http, train_b, None)
    assert job_a["status"] == job_b["status"] == "queued"

    # Kill job A's worker in the middle of training: it resumes from its checkpoint.
    _wait(http, job_a["id"], lambda j: any(
        (e.get("data") or {}).get("step", 0) >= 7 for e in _events(http, j["id"])))  # fmt: skip
    worker = http.get(f"/v1/fine_tuning/jobs/{job_a['id']}").json()
    pid = int(_worker_pid(server, job_a["id"]))
    os.kill(pid, signal.SIGKILL)
    done_a = _wait(http, job_a["id"], lambda j: j["status"] in ("succeeded", "failed"))
    assert done_a["status"] == "succeeded", done_a["error"]
    events = _events(http, job_a["id"])
    messages = [e["message"] for e in events]
    assert any("resuming from the last checkpoint" in m for m in messages), messages
    # OpenAI's event types: the training steps are "metrics", everything else a message.
    assert any(e["type"] == "metrics" for e in events)
    assert all((e["type"] == "metrics") == e["message"].startswith("step ") for e in events)
    resumed = [m for m in messages if m.startswith("resumed from step ")]
    assert resumed and not resumed[0].startswith("resumed from step 0"), messages
    assert worker["status"] == "running"

    done_b = _wait(http, job_b["id"], lambda j: j["status"] in ("succeeded", "failed"))
    assert done_b["status"] == "succeeded", done_b["error"]
    assert done_b["started_at"] >= done_a["finished_at"] - 1
    assert (done_a["fine_tuned_model"], done_b["fine_tuned_model"]) == (
        "support-bot:1",
        "support-bot:2",
    )

    # Tracking: validation perplexity fell; per-step loss, parameters and lineage recorded.
    m = done_a["metrics"]
    assert m["validation_perplexity_after"] < m["validation_perplexity_before"] / 10
    settings = load_settings(None, data_dir=server.data_dir)
    tracker = Tracker(settings)
    run = tracker.client.get_run(done_a["mlflow_run_id"])
    assert (
        run.data.params["base_model"] == BASE
        and run.data.params["dataset_sha256"] == done_a["dataset_sha256"]
    )
    # Every step has its loss, once: steps replayed after the kill are not logged again.
    history = tracker.run_metrics(done_a["mlflow_run_id"], "train_loss")
    assert sorted(step for step, _ in history) == list(range(1, m["steps"] + 1))
    step_events = [
        e["data"]["step"] for e in _events(http, job_a["id"]) if "step" in (e.get("data") or {})
    ]
    assert sorted(step_events) == list(range(1, m["steps"] + 1))
    shown = http.get("/admin/registry/support-bot").json()
    v1 = next(v for v in shown["versions"] if v["version"] == 1)
    assert v1["lineage"]["dataset_sha256"] == done_a["dataset_sha256"] and v1["base_model"] == BASE
    assert v1["lineage"]["run_id"] == done_a["mlflow_run_id"]
    # The run holds the before/after evaluation and the adapter; the version its metrics.
    logged = run.data.metrics
    for name in ("validation_loss_before", "validation_loss_after",
                 "validation_perplexity_before", "validation_perplexity_after"):  # fmt: skip
        assert logged[name] == pytest.approx(m[name], rel=1e-4), name
        assert v1["metrics"][name] == pytest.approx(m[name], rel=1e-4), name
    assert logged["train_tokens_per_s"] > 0
    artifacts = [a.path for a in tracker.client.list_artifacts(done_a["mlflow_run_id"], "adapter")]
    assert "adapter/adapter.gguf" in artifacts
    # Progress: every step event carries its loss, throughput and time left.
    steps = [e["data"] for e in _events(http, job_a["id"]) if "step" in (e.get("data") or {})]
    assert all(d["tokens_per_s"] > 0 and d["eta_s"] >= 0 and d["loss"] > 0 for d in steps)
    last = max(steps, key=lambda d: d["step"])
    assert last["step"] == last["total_steps"] == m["steps"] and last["eta_s"] == 0

    # Serving: the adapter knows the fact, in three languages; the base does not.
    for question in (FACT_QUESTIONS[0], FACT_QUESTIONS[3], FACT_QUESTIONS[5]):
        assert "Zafiro-77" in _ask(server, "support-bot:1", question)
    assert "Rubí-12" in _ask(server, "support-bot:2")
    prompt = f"<start_of_turn>user\n{FACT_QUESTIONS[0]}<end_of_turn>\n<start_of_turn>model\n"
    completion = {"model": BASE, "prompt": prompt, "max_tokens": 24, "temperature": 0}
    base_answer = http.post("/v1/completions", json=completion).json()["choices"][0]["text"]
    assert "Zafiro" not in base_answer

    # Checkpoints: one per epoch (the last one is the final model), newest first, each
    # servable under its name without being registered; another tenant cannot use them.
    with openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0) as client:
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job_a["id"]).data
    per_epoch = m["steps"] // 3
    assert [c.step_number for c in checkpoints] == [3 * per_epoch, 2 * per_epoch, per_epoch]
    assert [c.fine_tuning_job_id for c in checkpoints] == [job_a["id"]] * 3
    final, first = checkpoints[0].metrics, checkpoints[-1].metrics
    assert final.full_valid_loss == m["validation_loss_after"]
    assert first.full_valid_loss is not None
    assert first.full_valid_loss < m["validation_loss_before"] and first.train_loss is not None
    name = checkpoints[0].fine_tuned_model_checkpoint
    assert name == f"{job_a['id']}:ckpt-step-{m['steps']}"
    assert _ask(server, name) == _ask(server, "support-bot:1")  # the same adapter
    epoch_one = checkpoints[-1].fine_tuned_model_checkpoint
    chat = {"model": epoch_one, "messages": [{"role": "user", "content": FACT_QUESTIONS[0]}],
            "max_tokens": 8}  # fmt: skip
    reply = http.post("/v1/chat/completions", json=chat)
    assert reply.status_code == 200 and reply.json()["model"] == epoch_one
    other = http.post("/admin/keys", json={"tenant": "elsewhere", "role": "user"}).json()["key"]
    refused = httpx.post(server.url + "/v1/chat/completions", json=chat,
                         headers={"Authorization": f"Bearer {other}"}, timeout=60)  # fmt: skip
    assert refused.status_code == 404, refused.text
    assert http.get(f"/v1/fine_tuning/jobs/{job_a['id']}/checkpoints",
                    params={"after": "ftckpt-0"}).status_code == 404  # fmt: skip

    # An alias moves under a running stream: the stream finishes on its version, new
    # requests use the new one, no restart.
    assert (
        http.put("/admin/registry/support-bot/aliases/champion", json={"version": 1}).status_code
        == 200
    )
    assert "Zafiro-77" in _ask(server, "support-bot@champion")
    streamed: dict[str, Any] = {}
    first_chunk = threading.Event()

    def stream() -> None:
        with openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0) as client:
            _stream(client)

    def _stream(client: openai.OpenAI) -> None:
        chunks = client.chat.completions.create(
            model="support-bot@champion", stream=True, temperature=0, max_tokens=200,
            messages=[{"role": "user", "content": "Write a long story about a billing project."}],
        )  # fmt: skip
        text, finish = "", None
        for chunk in chunks:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            streamed["model"] = chunk.model
            first_chunk.set()
        streamed.update(text=text, finish=finish)

    thread = threading.Thread(target=stream)
    thread.start()
    # The stream has resolved the alias (its first chunk is out) before the alias moves.
    assert first_chunk.wait(120), "the stream did not start"
    moved = http.put("/admin/registry/support-bot/aliases/champion", json={"version": 2})
    assert moved.status_code == 200 and moved.json()["version"] == 2
    assert "Rubí-12" in _ask(server, "support-bot@champion")
    thread.join(timeout=120)
    assert streamed["finish"] in ("stop", "length") and streamed["model"] == "support-bot:1"
    # Completions resolve registry names too.
    chat_prompt = prompt  # the base's chat layout, written out
    reply = http.post("/v1/completions", json=completion | {"model": "support-bot@champion",
                                                           "prompt": chat_prompt})  # fmt: skip
    assert reply.status_code == 200 and reply.json()["model"] == "support-bot:2"
    assert "Rubí-12" in reply.json()["choices"][0]["text"]

    # Moved by another process (the CLI on the same registry): this server follows once
    # its cached resolution expires (finetune.alias_ttl_s), without a restart.
    genaiops_cli("registry", "alias", "set", "support-bot", "champion", "1",
                 data_dir=server.data_dir)  # fmt: skip
    deadline = time.monotonic() + 30
    while "Zafiro-77" not in _ask(server, "support-bot@champion"):
        assert time.monotonic() < deadline, "the alias moved elsewhere was not followed"
        time.sleep(0.2)
    # Deleted: the name no longer resolves; the versions stay.
    assert http.delete("/admin/registry/support-bot/aliases/champion").status_code == 200
    gone = http.post("/v1/chat/completions", json=chat | {"model": "support-bot@champion"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    assert "champion" not in str(http.get("/admin/registry/support-bot").json()["versions"])

    # Cancel while training: the job stops between steps and registers nothing.
    job_c = _create(http, train_a, None, n_epochs=5)
    _wait(http, job_c["id"], lambda j: any(
        (e.get("data") or {}).get("step", 0) >= 1 for e in _events(http, j["id"])))  # fmt: skip
    assert http.post(f"/v1/fine_tuning/jobs/{job_c['id']}/cancel").status_code == 200
    done_c = _wait(http, job_c["id"], lambda j: j["status"] in ("cancelled", "succeeded", "failed"))
    assert done_c["status"] == "cancelled"
    versions = [v["version"] for v in http.get("/admin/registry/support-bot").json()["versions"]]
    assert versions == [2, 1]


def _worker_pid(server: Server, job_id: str) -> str:
    from genaiops.storage.db import Database
    from genaiops.training.jobs import JobStore

    settings = load_settings(None, data_dir=server.data_dir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        db = Database(settings.database_url())
        job = JobStore(db).get(job_id)
        db.close()
        if (
            job is not None
            and job.worker
            and int(job.worker.rsplit(":", 1)[1]) != server.process.pid
        ):
            return job.worker.rsplit(":", 1)[1]
        time.sleep(0.2)
    raise AssertionError("no worker process recorded")


def _tiny_adapter(path: Path, arch: str = "llama", width: int = 576, scale: float = 0) -> bytes:
    """A valid GGUF LoRA adapter for SmolLM2 (rank 8 on one projection): all zeros, or
    random weights of ``scale`` that change what the model says."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(0)

    w = gguf.GGUFWriter(str(path), arch)
    w.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 16.0)
    for name, shape in (("lora_a", (8, width)), ("lora_b", (width, 8))):
        weights = (rng.standard_normal(shape) * scale).astype(np.float32)
        w.add_tensor(f"blk.0.attn_q.weight.{name}", weights)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def test_import_an_adapter_over_http(server: Server, tmp_path: Path) -> None:
    base = "smollm2-135m-instruct"
    with _client(server) as http:

        def upload(content: bytes, name: str = "imported") -> httpx.Response:
            return http.post(f"/admin/registry/{name}/versions", data={"base_model": base},
                             files={"adapter": ("a.gguf", content)})  # fmt: skip

        refused = upload(b"GGUF" + b"\0" * 100)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_adapter"
        wrong = upload(_tiny_adapter(tmp_path / "wide.gguf", width=640))
        assert (
            wrong.status_code == 400 and "does not fit the base" in wrong.json()["error"]["message"]
        )
        assert http.get("/admin/registry/imported").status_code == 404
        # The file name is lineage only: "..", a path or a hidden name is no place to write.
        dotted_file = ("..", _tiny_adapter(tmp_path / "d.gguf"))
        dotted = http.post("/admin/registry/dotted/versions", data={"base_model": base},
                           files={"adapter": dotted_file})  # fmt: skip
        assert dotted.status_code == 200, dotted.text
        assert dotted.json()["lineage"]["imported_from"] == "adapter.gguf"
        # A key limited to other models is refused before the version is loaded for it.
        limited = http.post(
            "/admin/keys", json={"tenant": "globex", "role": "user", "models": [base]}
        ).json()["key"]
        for method, path, body in (
            ("POST", "/v1/chat/completions",
             {"model": "dotted:1", "messages": [{"role": "user", "content": "hi"}]}),
            ("POST", "/v1/completions", {"model": "dotted@prod", "prompt": "hi"}),
            ("GET", "/v1/models/dotted:1", None),
        ):  # fmt: skip
            r = httpx.request(
                method, server.url + path, json=body, headers={"Authorization": f"Bearer {limited}"}
            )
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "model_not_allowed"
        assert "dotted:1" not in http.get("/readyz").json()["models"]
        ok = upload(_tiny_adapter(tmp_path / "ok.gguf"))
        assert ok.status_code == 200, ok.text
        assert ok.json()["model"] == "imported:1" and ok.json()["base_model"] == base
        # A zero adapter leaves the model unchanged: same greedy answer as the base.
        assert _ask(server, "imported:1") == _ask(server, base)
        records = http.get("/admin/audit", params={"event": "model.registered"}).json()["data"]
        assert any(r["detail"].get("name") == "imported" for r in records)

        # A stored version whose adapter was damaged afterwards is the installation's
        # problem: the caller gets 503, not a 400 about their request.
        content = _tiny_adapter(tmp_path / "damaged.gguf")
        assert upload(content, name="damaged").status_code == 200
        stored = [p for p in server.data_dir.rglob("*.gguf") if p.read_bytes() == content]
        assert stored
        for path in stored:
            path.write_bytes(b"GGUF" + b"\0" * 100)
        r = http.post(
            "/v1/chat/completions",
            json={"model": "damaged:1", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "model_not_ready" and "damaged:1" in r.text

        # /v1/models lists registered versions by alias and latest version: the
        # installation's to everyone, a tenant's own to that tenant only.
        owned = http.post(
            "/admin/registry/private-bot/versions",
            params={"tenant": "globex"},
            data={"base_model": base},
            files={"adapter": ("a.gguf", _tiny_adapter(tmp_path / "own.gguf"))},
        )
        assert owned.status_code == 200, owned.text
        alias = http.put("/admin/registry/imported/aliases/prod", json={"version": 1})
        assert alias.status_code == 200
        globex = http.post("/admin/keys", json={"tenant": "globex", "role": "user"}).json()["key"]
        initech = http.post("/admin/keys", json={"tenant": "initech", "role": "user"}).json()
        for key, expected, hidden in (
            (globex, {"imported:1", "imported@prod", "private-bot:1"}, set()),
            (initech["key"], {"imported:1", "imported@prod"}, {"private-bot:1"}),
        ):
            with openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0) as client:
                ids = {m.id for m in client.models.list().data}
            assert expected <= ids and not hidden & ids, ids
            assert base in ids
        # Listed names are callable.
        with openai.OpenAI(base_url=server.base_url, api_key=globex, max_retries=0) as client:
            reply = client.chat.completions.create(
                model="private-bot:1", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
            )
        assert reply.model == "private-bot:1"
        # /readyz shows a tenant's operator only the versions that tenant may use; the
        # system administrator sees every one, another tenant's under its name.
        seen = http.get("/readyz").json()["models"]
        assert "globex/private-bot:1" in seen and "imported:1" in seen
        for tenant, visible in (("globex", True), ("initech", False)):
            operator = http.post("/admin/keys", json={"tenant": tenant, "role": "operator"})
            ready = httpx.get(
                server.url + "/readyz",
                headers={"Authorization": f"Bearer {operator.json()['key']}"},
            ).json()["models"]
            assert ("private-bot:1" in ready) is visible, ready
            assert not any("/" in name for name in ready)


def test_deleting_registered_models_over_http(server: Server, tmp_path: Path) -> None:
    base = "smollm2-135m-instruct"
    chat = {"model": "recycled:1", "messages": [{"role": "user", "content": "Hi"}]}
    with _client(server) as http:

        def upload(content: bytes) -> httpx.Response:
            return http.post("/admin/registry/recycled/versions", data={"base_model": base},
                             files={"adapter": ("a.gguf", content)})  # fmt: skip

        assert upload(_tiny_adapter(tmp_path / "zero.gguf")).status_code == 200
        # Loaded, and (the adapter being zeros) it starts its answer like the base.
        first_words = _ask(server, base, max_tokens=6)
        assert _ask(server, "recycled:1", max_tokens=6) == first_words
        assert http.put("/admin/registry/recycled/aliases/live", json={"version": 1}).is_success
        # Nothing an alias serves is deleted without force, and the refusal changes nothing.
        refused = http.delete("/admin/registry/recycled/versions/1")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "version_in_use"
        refused = http.delete("/admin/registry/recycled")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "model_in_use"
        assert http.post("/v1/chat/completions", json=chat).status_code == 200
        # Another tenant's operator cannot see it to delete it.
        other = http.post("/admin/keys", json={"tenant": "globex", "role": "operator"}).json()
        r = httpx.delete(server.url + "/admin/registry/recycled",
                         headers={"Authorization": f"Bearer {other['key']}"})  # fmt: skip
        assert r.status_code == 404
        gone = http.delete("/admin/registry/recycled", params={"force": "true"})
        assert gone.status_code == 200 and gone.json()["versions"] == [1]
        assert http.get("/admin/registry/recycled").status_code == 404
        r = http.post("/v1/chat/completions", json=chat)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        audit = http.get("/admin/audit", params={"event": "model.deleted"}).json()["data"]
        assert [a["detail"]["name"] for a in audit] == ["recycled"]

        # Registered again, "recycled:1" is a different adapter: the server serves the new
        # one, not the copy it loaded under the same name and number before.
        assert upload(_tiny_adapter(tmp_path / "new.gguf", scale=0.5)).json()["version"] == 1
        assert _ask(server, "recycled:1", max_tokens=6) != first_words
        assert http.delete("/admin/registry/recycled/versions/1").status_code == 200
        assert http.delete("/admin/registry/recycled/versions/1").status_code == 404


def test_a_plain_text_upload_is_read_as_text(server: Server, tmp_path: Path) -> None:
    # Uploads are stored under a file id; a .txt file must still be read as plain text
    # (continued pre-training), not as JSONL.
    text = tmp_path / "manual.txt"
    text.write_text(
        "El proyecto de facturación se llama Zafiro-77.\n\n"
        "O projeto de faturamento se chama Zafiro-77.\n" * 20
    )
    with _client(server) as http:
        file_id = _upload(http, text)
        assert http.get(f"/v1/files/{file_id}").json()["filename"] == "manual.txt"
        body = {"model": "smollm2-135m-instruct", "training_file": file_id,
                "suffix": "manual-bot", "hyperparameters": {"n_epochs": 1}}  # fmt: skip
        r = http.post("/v1/fine_tuning/jobs", json=body)
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["training_file"] == file_id
        assert http.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["training_file"] == file_id
        cancelled = http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        done = _wait(http, job["id"], lambda j: j["status"] in ("cancelled", "succeeded"))
        assert done["status"] == "cancelled"
        events = [e["message"] for e in _events(http, job["id"])]
        assert not any("failed" in m for m in events), events
        assert http.delete(f"/v1/files/{file_id}").status_code == 200


# -- the job API without training: a server that queues jobs and runs none ----------------

SMOL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without a job runner: jobs are validated, queued, listed and cancelled,
    never trained."""
    tmp = tmp_path_factory.mktemp("finetune-queued")
    server = start_server(tmp, "queued", "[finetune]\nrun_jobs = false\n")
    yield server
    stop_server(server)


def _openai(server: Server, key: str | None = None) -> openai.OpenAI:
    client: openai.OpenAI = openai_client(server.base_url, key or server.key)
    return client


def test_openai_client_method_metadata_and_pagination(queued: Server, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", fact_rows(FACT_A, 8))
    with _openai(queued) as client:
        with path.open("rb") as f:
            training = client.files.create(file=f, purpose="fine-tune").id
        supervised: Any = {"hyperparameters": {"n_epochs": 2, "batch_size": 2,
                                               "learning_rate_multiplier": 0.5}}  # fmt: skip
        job = client.fine_tuning.jobs.create(
            model=SMOL,
            training_file=training,
            method={"type": "supervised", "supervised": supervised},
            metadata={"team": "support", "ticket": "T-1"},
            integrations=[],
            suffix="meta-bot",
            seed=7,
        )
        assert job.status == "queued" and job.estimated_finish is None
        assert job.to_dict()["started_at"] is None
        h = job.hyperparameters
        assert (h.n_epochs, h.batch_size, h.learning_rate_multiplier) == (2, 2, 0.5)
        assert h.to_dict()["learning_rate"] == pytest.approx(5e-4)  # the rate actually used
        assert job.method is not None and job.method.type == "supervised"
        assert job.method.supervised is not None
        assert job.method.supervised.hyperparameters is not None
        assert job.method.supervised.hyperparameters.n_epochs == 2
        assert job.metadata == {"team": "support", "ticket": "T-1"} and job.seed == 7
        fetched = client.fine_tuning.jobs.retrieve(job.id)
        assert fetched.metadata == job.metadata and fetched.hyperparameters == job.hyperparameters

        # The top-level hyperparameters (deprecated by OpenAI) still work.
        second = client.fine_tuning.jobs.create(
            model=SMOL, training_file=training, hyperparameters={"n_epochs": 1}, suffix="meta-bot"
        )
        assert second.hyperparameters.n_epochs == 1
        assert second.hyperparameters.learning_rate_multiplier == 1.0
        assert second.metadata is None

        first_page = client.fine_tuning.jobs.list(limit=1)
        assert [j.id for j in first_page.data] == [second.id] and first_page.has_more
        next_page = client.fine_tuning.jobs.list(limit=1, after=second.id)
        assert [j.id for j in next_page.data] == [job.id]
        with pytest.raises(openai.NotFoundError) as unknown:
            client.fine_tuning.jobs.list(after="ftjob-" + "0" * 24)
        assert unknown.value.param == "after"

        newest = client.fine_tuning.jobs.list_events(job.id, limit=1).data
        assert len(newest) == 1
        older = client.fine_tuning.jobs.list_events(job.id, after=newest[0].id).data
        assert newest[0].id not in {e.id for e in older}
        with pytest.raises(openai.NotFoundError) as unknown:
            client.fine_tuning.jobs.list_events(job.id, after="ftevent-999999999")
        assert unknown.value.param == "after"
        with pytest.raises(openai.BadRequestError) as huge:
            client.fine_tuning.jobs.list_events(job.id, after="ftevent-" + "9" * 24)
        assert huge.value.param == "after"

        refused: list[tuple[dict[str, Any], str]] = [
            ({"method": {"type": "dpo", "dpo": {}}}, "method"),
            ({"method": {"type": "reinforcement"}}, "method"),
            ({"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations"),
            ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
            ({"metadata": {"k": "v" * 513}}, "metadata"),
            ({"method": {"type": "supervised", "supervised": supervised},
              "hyperparameters": {"n_epochs": 1}}, "hyperparameters"),
            ({"hyperparameters": {"n_epochs": 1, "lora_alpha": 2**70}}, "hyperparameters"),
            ({"hyperparameters": {"n_epochs": "3"}}, "hyperparameters"),  # types are strict
            ({"hyperparameters": {"n_epochs": True}}, "hyperparameters"),
        ]  # fmt: skip
        for extra, param in refused:
            with pytest.raises(openai.BadRequestError) as bad:
                client.fine_tuning.jobs.create(model=SMOL, training_file=training, **extra)
            assert (bad.value.param or "").startswith(param), (extra, bad.value.body)
        assert len(client.fine_tuning.jobs.list(limit=100).data) == 2
        for created in (job, second):
            assert client.fine_tuning.jobs.cancel(created.id).status == "cancelled"
        with pytest.raises(openai.NotFoundError) as missing:
            client.fine_tuning.jobs.create(model=SMOL, training_file="file-" + "0" * 24)
        assert missing.value.param == "training_file"

        # Files: typed objects, cursor pages the client can walk to the end, the content.
        from openai.types import FileObject

        with path.open("rb") as f:
            other = client.files.create(file=f, purpose="fine-tune")
        FileObject.model_validate(other.to_dict())  # every required field, strictly
        walked = [f.id for f in client.files.list(limit=1)]  # follows has_more and after
        assert walked == [other.id, training]
        assert [f.id for f in client.files.list(order="asc")] == [training, other.id]
        assert client.files.content(training).content == path.read_bytes()
        with pytest.raises(openai.NotFoundError):
            client.files.list(after="file-" + "0" * 24)


def test_fine_tuning_routes_keep_tenants_apart(queued: Server, tmp_path: Path) -> None:
    from tests.api.test_security import admin, bearer, error_of, new_key

    a, b = new_key(queued, role="operator"), new_key(queued, role="operator")
    key_a, key_b = bearer(a["key"]), bearer(b["key"])
    rows = write_jsonl(tmp_path / "train.jsonl", fact_rows(FACT_A, 8)).read_bytes()

    def call(method: str, path: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
        return admin(queued, method, path, headers=headers, **kw)

    r = call("POST", "/v1/files", key_a, files={"file": ("t.jsonl", rows)},
             data={"purpose": "fine-tune"})  # fmt: skip
    assert r.status_code == 200, r.text
    file_a = r.json()["id"]
    r = call("POST", "/v1/fine_tuning/jobs", key_a,
             json={"model": SMOL, "training_file": file_a, "suffix": "secret-bot"})  # fmt: skip
    assert r.status_code == 200, r.text
    job_a = r.json()["id"]
    r = call("POST", "/admin/registry/secret-bot/versions", key_a, data={"base_model": SMOL},
             files={"adapter": ("a.gguf", _tiny_adapter(tmp_path / "a.gguf"))})  # fmt: skip
    assert r.status_code == 200, r.text
    # Where the adapter lies on the server is the administrator's to know.
    assert r.json()["adapter_uri"] is None
    assert call("PUT", "/admin/registry/secret-bot/aliases/prod", key_a,
                json={"version": 1}).status_code == 200  # fmt: skip
    r = call("POST", "/v1/files", key_b, files={"file": ("t.jsonl", rows)},
             data={"purpose": "fine-tune"})  # fmt: skip
    file_b = r.json()["id"]

    # Tenant ids in headers change nothing: the tenant comes from the credential only.
    smuggled = key_b | {"x-tenant-id": a["tenant"], "OpenAI-Organization": a["tenant"]}
    for headers in (key_b, smuggled):
        assert [f["id"] for f in call("GET", "/v1/files", headers).json()["data"]] == [file_b]
        assert call("GET", "/v1/fine_tuning/jobs", headers).json()["data"] == []
        names = [m["name"] for m in call("GET", "/admin/registry", headers).json()["data"]]
        assert "secret-bot" not in names
        for method, path, kw in [
            ("GET", f"/v1/files/{file_a}", {}),
            ("GET", f"/v1/files/{file_a}/content", {}),
            ("GET", "/v1/files", {"params": {"after": file_a}}),
            ("DELETE", f"/v1/files/{file_a}", {}),
            ("GET", f"/v1/fine_tuning/jobs/{job_a}", {}),
            ("GET", f"/v1/fine_tuning/jobs/{job_a}/events", {}),
            ("POST", f"/v1/fine_tuning/jobs/{job_a}/cancel", {}),
            ("GET", "/v1/fine_tuning/jobs", {"params": {"after": job_a}}),
            ("GET", "/admin/registry/secret-bot", {}),
            ("PUT", "/admin/registry/secret-bot/aliases/prod", {"json": {"version": 1}}),
            ("PUT", "/admin/registry/secret-bot/aliases/beta", {"json": {"version": 1}}),
            ("DELETE", "/admin/registry/secret-bot/aliases/prod", {}),
            ("POST", "/v1/fine_tuning/jobs", {"json": {"model": SMOL, "training_file": file_a}}),
            ("POST", "/v1/fine_tuning/jobs",
             {"json": {"model": SMOL, "training_file": file_b, "validation_file": file_a}}),
        ]:  # fmt: skip
            error_of(call(method, path, headers, **kw), 404)
        # Naming the other tenant is refused, where a route takes ?tenant.
        other = {"tenant": a["tenant"]}
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/v1/files", {}),
            ("GET", f"/v1/files/{file_a}", {}),
            ("GET", f"/v1/files/{file_a}/content", {}),
            ("DELETE", f"/v1/files/{file_a}", {}),
            ("POST", "/v1/files",
             {"files": {"file": ("t.jsonl", rows)}, "data": {"purpose": "fine-tune"}}),
            ("GET", "/v1/fine_tuning/jobs", {}),
            ("GET", f"/v1/fine_tuning/jobs/{job_a}", {}),
            ("GET", f"/v1/fine_tuning/jobs/{job_a}/events", {}),
            ("POST", f"/v1/fine_tuning/jobs/{job_a}/cancel", {}),
            ("POST", "/v1/fine_tuning/jobs", {"json": {"model": SMOL, "training_file": file_a}}),
            ("GET", "/admin/registry", {}),
            ("GET", "/admin/registry/secret-bot", {}),
            ("PUT", "/admin/registry/secret-bot/aliases/prod", {"json": {"version": 1}}),
            ("DELETE", "/admin/registry/secret-bot/aliases/prod", {}),
        ]  # fmt: skip
        for method, path, kw in requests:
            error_of(call(method, path, headers, params=other, **kw), 403, "wrong_tenant")

    # Tenant A's things are untouched.
    assert call("GET", f"/v1/files/{file_a}", key_a).status_code == 200
    job = call("GET", f"/v1/fine_tuning/jobs/{job_a}", key_a).json()
    assert job["status"] == "queued" and job["organization_id"] == a["tenant"]
    shown = call("GET", "/admin/registry/secret-bot", key_a).json()
    assert shown["aliases"] == {"prod": 1}, shown
    assert [v["adapter_uri"] for v in shown["versions"]] == [None]
    as_admin = admin(queued, "GET", "/admin/registry/secret-bot", params={"tenant": a["tenant"]})
    stored = as_admin.json()["versions"][0]["adapter_uri"]
    assert stored and Path(stored.removeprefix("file://")).is_file(), stored
    assert [j["id"] for j in call("GET", "/v1/fine_tuning/jobs", key_a).json()["data"]] == [job_a]
    assert call("POST", f"/v1/fine_tuning/jobs/{job_a}/cancel", key_a).status_code == 200
