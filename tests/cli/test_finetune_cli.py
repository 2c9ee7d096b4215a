"""genaiops finetune / jobs / registry against a real data directory and the SmolLM2 base."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import genaiops_cli
from tests.training.conftest import fact_rows, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
BASE = "smollm2-135m-instruct"


def test_finetune_cli_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": "b", "completion": ""}\n')
    failed = genaiops_cli("finetune", "--base", BASE, "--data", str(bad), "--name", "bot",
                          data_dir=data, check=False)  # fmt: skip
    assert failed.returncode == 2
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 1: missing 'completion'" in lines[0]
    assert "line 2: empty completion" in lines[0]
    unknown = genaiops_cli("finetune", "--base", "nope", "--data", str(bad), "--name", "bot",
                           data_dir=data, check=False)  # fmt: skip
    assert unknown.returncode == 2 and "does not exist" in unknown.stderr

    train = write_jsonl(tmp_path / "train.jsonl", fact_rows("Zafiro-77.", 8))
    done = genaiops_cli("finetune", "--base", BASE, "--data", str(train), "--name", "bot",
                        "--epochs", "1", "--r", "4", "--json", data_dir=data)  # fmt: skip
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["fine_tuned_model"] == "bot:1"
    assert job["hyperparameters"]["lora_r"] == 4 and job["trained_tokens"] > 0

    listed = json.loads(genaiops_cli("registry", "list", "--json", data_dir=data).stdout)
    assert [(m["name"], m["latest_version"]) for m in listed] == [("bot", 1)]
    # Jobs page like the API: newest first, --after the last id shown.
    queued = genaiops_cli("finetune", "--base", BASE, "--data", str(train), "--name", "later",
                          "--detach", "--json", data_dir=data)  # fmt: skip
    newest = json.loads(queued.stdout)["id"]
    page = json.loads(genaiops_cli("jobs", "list", "--limit", "1", "--json", data_dir=data).stdout)
    assert [j["id"] for j in page] == [newest]
    rest = genaiops_cli("jobs", "list", "--after", newest, "--json", data_dir=data)
    assert [j["id"] for j in json.loads(rest.stdout)] == [job["id"]]
    assert (
        "bot@champion -> version 1"
        in genaiops_cli("registry", "alias", "set", "bot", "champion", "1", data_dir=data).stdout
    )
    shown = json.loads(genaiops_cli("registry", "show", "bot", data_dir=data).stdout)
    assert shown["aliases"] == {"champion": 1}
    assert shown["versions"][0]["lineage"]["dataset_sha256"] == job["dataset_sha256"]
    events = genaiops_cli("jobs", "events", job["id"], data_dir=data).stdout
    assert "registered bot version 1" in events
    listed = genaiops_cli("jobs", "checkpoints", job["id"], "--json", data_dir=data).stdout
    (final,) = json.loads(listed)  # one epoch: the final model only
    assert final["model"] == f"{job['id']}:ckpt-step-{final['step']}" and final["train_loss"]

    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\0" * 64)
    refused = genaiops_cli("registry", "import", "bot", "--adapter", str(corrupt), "--base", BASE,
                           data_dir=data, check=False)  # fmt: skip
    assert refused.returncode == 2 and "not a readable GGUF" in refused.stderr
    again = json.loads(genaiops_cli("registry", "list", "--json", data_dir=data).stdout)
    assert again[0]["latest_version"] == 1
    audit = genaiops_cli("audit", "export", "--event", "model.alias_set", data_dir=data).stdout
    assert '"alias": "champion"' in audit
    created = genaiops_cli("audit", "export", "--event", "finetune.created", data_dir=data)
    jobs = [json.loads(line)["detail"]["job"] for line in created.stdout.splitlines()]
    assert jobs == [job["id"], newest]
    genaiops_cli("jobs", "cancel", newest, data_dir=data)
    cancelled = genaiops_cli("audit", "export", "--event", "finetune.cancelled", data_dir=data)
    assert [json.loads(line)["detail"]["job"] for line in cancelled.stdout.splitlines()] == [newest]

    # A command killed mid-run leaves its job "running" under a dead process: running the
    # same command again continues that job instead of starting a second one.
    again = ["--base", BASE, "--data", str(train), "--name", "again", "--epochs", "1", "--r", "4"]
    planted = json.loads(
        genaiops_cli("finetune", *again, "--detach", "--json", data_dir=data).stdout
    )["id"]
    gone = subprocess.Popen(["true"])
    gone.wait()
    with sqlite3.connect(data / "genaiops.db") as conn:
        conn.execute(
            "UPDATE fine_tuning_jobs SET status = 'running', worker = ?, heartbeat_us = ?"
            " WHERE id = ?",
            (f"cli:{socket.gethostname()}:{gone.pid}", time.time_ns() // 1000, planted),
        )
    before = len(json.loads(genaiops_cli("jobs", "list", "--json", data_dir=data).stdout))
    resumed = genaiops_cli("finetune", *again, "--json", data_dir=data)
    assert f"{planted}: the same job was interrupted" in resumed.stderr
    finished = json.loads(resumed.stdout)
    assert finished["id"] == planted and finished["fine_tuned_model"] == "again:1"
    assert len(json.loads(genaiops_cli("jobs", "list", "--json", data_dir=data).stdout)) == before

    # A merged version is served by the transformers engine instead of llama.cpp.
    args = ["--data", str(train), "--name", "bot", "--epochs", "1", "--r", "4", "--merged"]
    merged = genaiops_cli("finetune", "--base", BASE, *args, "--json", data_dir=data)
    assert json.loads(merged.stdout)["fine_tuned_model"] == "bot:2"
    shown = json.loads(genaiops_cli("registry", "show", "bot", data_dir=data).stdout)
    v2 = next(v for v in shown["versions"] if v["version"] == 2)
    assert v2["lineage"]["engine"] == "transformers" and v2["lineage"]["merged_uri"]
    answer = genaiops_cli("chat", "--model", "bot:2", "--temperature", "0", "--max-tokens", "8",
                          "--json", "What is the codename?", data_dir=data)  # fmt: skip
    reply = json.loads(answer.stdout)
    assert reply["model"] == "bot:2" and reply["usage"]["completion_tokens"] > 0


def test_version_like_aliases_are_refused(tmp_path: Path) -> None:
    from genaiops.config import load_settings
    from genaiops.registry.service import Registry

    data = tmp_path / "data"
    registry = Registry(load_settings(None, data_dir=data))
    registry.register("system", "bot", str(tmp_path / "adapter.gguf"), None, BASE, {})
    # MLflow keeps "v1", "V2"... for its own version references.
    for alias in ("v2", "v10"):
        refused = genaiops_cli("registry", "alias", "set", "bot", alias, "1", data_dir=data,
                               check=False)  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert "reserved" in refused.stderr and "Traceback" not in refused.stderr
    ok = genaiops_cli("registry", "alias", "set", "bot", "v2-candidate", "1", data_dir=data)
    assert "bot@v2-candidate -> version 1" in ok.stdout


def test_registry_delete(tmp_path: Path) -> None:
    from genaiops.config import load_settings
    from genaiops.registry.service import Registry

    data = tmp_path / "data"
    registry = Registry(load_settings(None, data_dir=data))
    for n in (1, 2):
        registry.register("system", "bot", str(tmp_path / f"{n}.gguf"), None, BASE, {})
    registry.set_alias("system", "bot", "champion", 2)
    refused = genaiops_cli("registry", "delete", "bot", "--version", "2", data_dir=data,
                           check=False)  # fmt: skip
    assert refused.returncode == 2 and "bot@champion" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "deleted bot:1" in genaiops_cli("registry", "delete", "bot", "--version", "1",
                                           data_dir=data).stdout  # fmt: skip
    missing = genaiops_cli("registry", "delete", "nobot", data_dir=data, check=False)
    assert missing.returncode != 0 and "nobot" in missing.stderr
    assert "deleted bot (1 version)" in genaiops_cli("registry", "delete", "bot", "--force",
                                        data_dir=data).stdout  # fmt: skip
    assert registry.list_models("system") == []
    audit = genaiops_cli("audit", "export", "--format", "jsonl", data_dir=data).stdout
    events = [json.loads(line)["event"] for line in audit.splitlines()]
    assert "model.version_deleted" in events and "model.deleted" in events


@pytest.mark.parametrize(("status", "code"), [("succeeded", 0), ("failed", 1), ("cancelled", 1)])
def test_a_foreground_job_that_did_not_succeed_exits_non_zero(
    status: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from genaiops.cli.finetune import _report

    class Ended:
        id, fine_tuned_model = "ftjob-1", "bot:1"
        error = {"message": "out of memory"} if status == "failed" else None

        def public(self) -> dict[str, object]:
            return {"metrics": {}}

    Ended.status = status  # type: ignore[attr-defined]
    try:
        _report(Ended(), as_json=False)
        exited = 0
    except typer.Exit as exc:
        exited = exc.exit_code
    assert exited == code
    if status == "cancelled":
        assert capsys.readouterr().err.strip() == "ftjob-1: cancelled"
