"""genaiops keys / tenants / usage / audit against a real SQLite data directory, including
tampering with the database file behind the audit log's back."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from genaiops.config import load_settings
from genaiops.security.principal import Principal
from genaiops.security.service import SecurityService
from tests.conftest import genaiops_cli

SYSTEM = Principal(tenant="system", role="admin", actor="test", via="cli")


def cli(data: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    result = genaiops_cli(*args, data_dir=data, check=check)
    return result.returncode, result.stdout, result.stderr


def populate(data: Path, inferences: int = 6) -> None:
    """A few keys and inference records written by the service, as a server would."""
    service = SecurityService(load_settings(data_dir=data))
    service.start()
    try:
        key = service.create_key(SYSTEM, tenant="acme", role="user").record
        principal = Principal("acme", "user", key.id, "api_key")
        for i in range(inferences):
            service.record_inference(
                principal,
                model="m",
                status=200,
                request_id=f"r{i}",
                latency_s=0.01,
                prompt_tokens=10 + i,
                completion_tokens=5,
            )
        service.recorder.flush()
    finally:
        service.recorder.close()
        service.db.close()


def test_key_lifecycle(tmp_path: Path) -> None:
    code, out, _ = cli(
        tmp_path,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--role",
        "user",
        "--rpm",
        "60",
        "--tpm",
        "20000",
        "--budget-tokens",
        "1000000",
        "--expires",
        "30d",
        "--models",
        "smollm2-135m-instruct,gemma3-270m",
        "--json",
    )
    created = json.loads(out)
    secret, key_id = created["key"], created["id"]
    assert secret.startswith(f"gaiops_{key_id}_")
    assert created["rpm"] == 60 and created["tpm"] == 20000
    assert created["budget_tokens"] == 1_000_000
    assert created["models"] == ["gemma3-270m", "smollm2-135m-instruct"]
    assert 29 * 86400 < created["expires_at"] - created["created_at"] <= 30 * 86400

    # Only a hash is stored: the secret appears nowhere in the database files.
    for path in tmp_path.glob("genaiops.db*"):
        assert secret.encode() not in path.read_bytes()
        assert secret.split("_", 2)[2].encode() not in path.read_bytes()

    _, out, _ = cli(tmp_path, "keys", "list", "--json")
    assert [k["id"] for k in json.loads(out)] == [key_id]
    assert secret not in out

    _, out, _ = cli(tmp_path, "keys", "rotate", key_id, "--json")
    rotated = json.loads(out)
    assert rotated["rotated_from"] == key_id and rotated["key"] != secret
    assert rotated["rpm"] == 60 and rotated["models"] == created["models"]

    _, out, _ = cli(tmp_path, "keys", "revoke", rotated["id"], "--json")
    assert json.loads(out)["status"] == "revoked"
    _, out, _ = cli(tmp_path, "keys", "list", "--all", "--json")
    assert {k["id"]: k["status"] for k in json.loads(out)} == {
        key_id: "revoked",
        rotated["id"]: "revoked",
    }
    assert cli(tmp_path, "keys", "list", "--json")[1].strip() == "[]"

    code, out, _ = cli(tmp_path, "audit", "export")
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events == ["key.created", "key.rotated", "key.revoked"]
    assert secret not in out and rotated["key"] not in out


def test_tenant_limits(tmp_path: Path) -> None:
    _, out, _ = cli(tmp_path, "tenants", "set", "acme", "--rpm", "10", "--budget-tokens", "500")
    _, out, _ = cli(tmp_path, "tenants", "list", "--json")
    assert json.loads(out) == [
        {
            "name": "acme",
            "object": "tenant",
            "rpm": 10,
            "tpm": None,
            "budget_tokens": 500,
            "budget_period": "month",
        }
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["keys", "create", "--tenant", "Bad Name"], 2, "invalid tenant name"),
        (["keys", "create", "--tenant", "acme", "--role", "root"], 2, "role must be one of"),
        (["keys", "create", "--tenant", "acme", "--expires", "forever"], 2, "invalid duration"),
        # An unset shell variable: never the installation's own tenant, never no expiry.
        (["keys", "create", "--tenant", "", "--role", "admin"], 2, "invalid tenant name ''"),
        (["keys", "create", "--tenant", "acme", "--expires", ""], 2, "invalid duration ''"),
        (["keys", "list", "--tenant", "Bad Name"], 2, "invalid tenant name"),
        (["keys", "create", "--tenant", "acme", "--rpm", "0"], 2, "rpm must be a positive"),
        (["keys", "revoke", "nope"], 1, "No API key with id 'nope'"),
        (["tenants", "set", "acme", "--budget-period", "year"], 2, "budget_period"),
        (["audit", "export", "--format", "xml"], 2, "--format must be jsonl or csv"),
        (["audit", "export", "--since", "yesterday"], 2, "since must be a date"),
        (["usage", "--group-by", "planet"], 2, "group_by takes"),
        (["keys", "create", "--tenant", "acme", "--models", ""], 2, "names no model"),
        (["keys", "create", "--tenant", "acme", "--models", " , "], 2, "names no model"),
        (["audit", "verify", "--anchor", "9" * 23 + ":" + "0" * 64], 2, "an anchor is SEQ:HASH"),
        # Bytes that are not UTF-8 (the OS hands them over as lone surrogates).
        (["keys", "create", "--tenant", "acme", "--name", "caf\udce9"], 2, "argument 6 is not"),
    ],
)
def test_bad_input_is_one_line_and_exit_code(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    returncode, _, err = cli(tmp_path, *args, check=False)
    assert returncode == code
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1, err


def test_usage_report(tmp_path: Path) -> None:
    populate(tmp_path, inferences=4)
    _, out, _ = cli(tmp_path, "usage", "--group-by", "tenant,model", "--json")
    assert json.loads(out) == [
        {
            "tenant": "acme",
            "model": "m",
            "requests": 4,
            "errors": 0,
            "prompt_tokens": 10 + 11 + 12 + 13,
            "completion_tokens": 20,
            "total_tokens": 66,
        }
    ]
    _, out, _ = cli(tmp_path, "usage", "--since", "2999-01-01", "--json")
    assert json.loads(out) == []
    # A group named twice is one column.
    _, out, _ = cli(tmp_path, "usage", "--group-by", "tenant,tenant", "--json")
    assert [sorted(row) for row in json.loads(out)] == [
        sorted(
            ["tenant", "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens"]
        )
    ]


def test_export_formats_and_filters(tmp_path: Path) -> None:
    populate(tmp_path, inferences=3)
    _, out, _ = cli(tmp_path, "audit", "export", "--since", "2000-01-01", "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert [r["event"] for r in records].count("inference") == 3
    assert all(len(r["hash"]) == 64 for r in records)
    _, out, _ = cli(tmp_path, "audit", "export", "--event", "inference", "--tenant", "acme")
    assert len(out.splitlines()) == 3
    assert cli(tmp_path, "audit", "export", "--since", "2999-01-01")[1] == ""
    target = tmp_path / "audit.csv"
    _, _, err = cli(tmp_path, "audit", "export", "--format", "csv", "-o", str(target))
    lines = target.read_text().splitlines()
    assert lines[0].startswith("seq,ts_us,event")
    assert len(lines) == len(records) + 1
    assert f"exported {len(records)} records" in err


def tamper(data: Path, *statements: str) -> None:
    with sqlite3.connect(data / "genaiops.db") as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.mark.parametrize(
    ("statements", "bad_seq", "reason"),
    [
        (["UPDATE audit_log SET completion_tokens = 999 WHERE seq = 4"], 4, "was modified"),
        (["UPDATE audit_log SET detail = '{\"admin\": true}' WHERE seq = 2"], 2, "was modified"),
        (["DELETE FROM audit_log WHERE seq = 3"], 3, "is missing"),
        (
            [
                "UPDATE audit_log SET seq = 100 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = 100",
            ],
            3,
            "does not link",
        ),
        (["DELETE FROM audit_log WHERE seq >= 6"], 6, "newest records were deleted"),
        (
            # Overwriting the stored hash along with a field does not hide the edit.
            ["UPDATE audit_log SET hash = '" + "a" * 64 + "', status = 500 WHERE seq = 5"],
            5,
            "was modified",
        ),
    ],
)
def test_audit_verify_detects_tampering(
    tmp_path: Path, statements: list[str], bad_seq: int, reason: str
) -> None:
    populate(tmp_path, inferences=6)
    code, out, _ = cli(tmp_path, "audit", "verify")
    assert code == 0 and "intact: 7 records" in out
    tamper(tmp_path, *statements)
    code, out, err = cli(tmp_path, "audit", "verify", check=False)
    assert code == 1
    assert f"record {bad_seq}" in err and reason in err
    code, out, _ = cli(tmp_path, "audit", "verify", "--json", check=False)
    assert code == 1 and json.loads(out)["first_bad_seq"] == bad_seq


def test_recomputed_hash_is_caught_at_the_next_link(tmp_path: Path) -> None:
    from genaiops.security.audit import FIELDS, record_hash

    populate(tmp_path, inferences=6)
    with sqlite3.connect(tmp_path / "genaiops.db") as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM audit_log WHERE seq = 4").fetchone())
        row["completion_tokens"] = 0
        forged = record_hash(row["prev_hash"], {k: row[k] for k in FIELDS})
        conn.execute(
            "UPDATE audit_log SET completion_tokens = 0, hash = ? WHERE seq = 4", (forged,)
        )
    code, _, err = cli(tmp_path, "audit", "verify", check=False)
    assert code == 1 and "record 5 does not link" in err


def forge_newest(data: Path) -> int:
    """Edit the newest record and recompute its hash, as an attacker with the file would."""
    from genaiops.security.audit import FIELDS, record_hash

    with sqlite3.connect(data / "genaiops.db") as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone())
        row["status"] = 204
        forged = record_hash(row["prev_hash"], {k: row[k] for k in FIELDS})
        conn.execute(
            "UPDATE audit_log SET status = 204, hash = ? WHERE seq = ?", (forged, row["seq"])
        )
    return int(row["seq"])


def test_recomputed_hash_of_the_newest_record_is_named(tmp_path: Path) -> None:
    populate(tmp_path, inferences=6)
    newest = forge_newest(tmp_path)
    assert newest == 7
    code, _, err = cli(tmp_path, "audit", "verify", check=False)
    assert code == 1 and "record 7 was modified" in err, err
    assert "missing" not in err
    code, out, _ = cli(tmp_path, "audit", "verify", "--json", check=False)
    assert code == 1 and json.loads(out)["first_bad_seq"] == 7


def test_deleted_head_row_is_reported_and_appends_continue(tmp_path: Path) -> None:
    populate(tmp_path, inferences=6)
    tamper(tmp_path, "DELETE FROM audit_head")
    # The next process re-seeds the head from the newest record and keeps appending.
    populate(tmp_path, inferences=2)
    _, out, _ = cli(tmp_path, "audit", "export")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, 12))
    assert records[7]["event"] == "audit.head_restored"
    assert records[7]["detail"] == {"restored_from_seq": 7}
    code, out, _ = cli(tmp_path, "audit", "verify", "--json", check=False)
    # The chain itself is whole, but the missing head row is tampering and is reported.
    result = json.loads(out)
    assert code == 1 and result["ok"] is False and "head" in result["reason"]


def test_verify_is_read_only_and_reports_a_deleted_head(tmp_path: Path) -> None:
    populate(tmp_path, inferences=3)
    tamper(tmp_path, "DELETE FROM audit_head")

    def contents() -> list[str]:
        with sqlite3.connect(tmp_path / "genaiops.db") as conn:
            return list(conn.iterdump())

    before = contents()
    code, _, err = cli(tmp_path, "audit", "verify", check=False)
    assert code == 1 and "head row was deleted" in err
    # Verifying a forensic copy leaves it as it was: nothing restored, nothing appended.
    assert contents() == before


def test_a_wiped_log_is_tampering_when_keys_exist(tmp_path: Path) -> None:
    populate(tmp_path, inferences=3)
    tamper(tmp_path, "DELETE FROM audit_log", "DELETE FROM audit_head")
    code, _, err = cli(tmp_path, "audit", "verify", check=False)
    assert code == 1 and "audit log is empty although" in err and "key" in err
    # The next process starts the log over, and says so in its first record: writes
    # after a wipe do not make it look intact.
    populate(tmp_path, inferences=2)
    code, out, _ = cli(tmp_path, "audit", "export")
    assert json.loads(out.splitlines()[0])["event"] == "audit.log_restarted"
    code, _, err = cli(tmp_path, "audit", "verify", check=False)
    assert code == 1 and "wiped" in err and "record 1" in err


@pytest.mark.parametrize("table", ["audit_log", "audit_head"])
def test_a_dropped_audit_table_is_tampering(tmp_path: Path, table: str) -> None:
    populate(tmp_path, inferences=2)
    tamper(tmp_path, f"DROP TABLE {table}")
    code, _, err = cli(tmp_path, "audit", "verify", check=False)
    assert code == 1 and f"table {table} does not exist" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback


def test_an_anchor_catches_a_log_rewritten_with_recomputed_hashes(tmp_path: Path) -> None:
    """The chain alone cannot tell a log whose every later hash was recomputed; a hash kept
    outside the database (an earlier verification's head, an export) can."""
    from genaiops.security.audit import FIELDS, record_hash

    populate(tmp_path, inferences=4)
    code, out, _ = cli(tmp_path, "audit", "verify")
    head = out.strip().rsplit("head ", 1)[1]
    seq, digest = head.split(":")
    assert code == 0 and seq == "5" and len(digest) == 64
    assert cli(tmp_path, "audit", "verify", "--anchor", head)[0] == 0
    # Rewrite record 2 and recompute every hash after it, and the head: the chain checks.
    with sqlite3.connect(tmp_path / "genaiops.db") as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY seq")]
        rows[1]["status"] = 204
        previous = rows[0]["hash"]
        for row in rows[1:]:
            row["prev_hash"] = previous
            row["hash"] = record_hash(previous, {k: row[k] for k in FIELDS})
            previous = row["hash"]
            conn.execute(
                "UPDATE audit_log SET status = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (row["status"], row["prev_hash"], row["hash"], row["seq"]),
            )
        conn.execute("UPDATE audit_head SET hash = ?", (previous,))
    assert cli(tmp_path, "audit", "verify")[0] == 0  # undetectable without an anchor
    code, _, err = cli(tmp_path, "audit", "verify", "--anchor", head, check=False)
    assert code == 1 and "record 5 does not hold the anchored hash" in err
    code, _, err = cli(tmp_path, "audit", "verify", "--anchor", "5:xyz", check=False)
    assert code == 2 and "SEQ:HASH" in err


def test_a_data_directory_that_cannot_be_one_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    for data, message in [(str(afile), "is not a directory"), ("", "is empty")]:
        result = subprocess.run(
            [sys.executable, "-m", "genaiops", "keys", "list"],
            env=os.environ | {"GENAIOPS_DATA_DIR": data},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing created


def test_verify_refuses_a_missing_database_and_creates_nothing(tmp_path: Path) -> None:
    returncode, _, err = cli(tmp_path / "nowhere", "audit", "verify", check=False)
    assert returncode == 2 and err.startswith("error: no database at")
    assert not (tmp_path / "nowhere").exists()


def test_names_are_shown_as_written_not_as_markup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key's name is data: rich markup in it ("[/x]", "[bold]") is printed literally."""
    monkeypatch.setenv("COLUMNS", "200")
    cli(tmp_path, "keys", "create", "--tenant", "acme", "--name", "[/x][b]")
    returncode, out, err = cli(tmp_path, "keys", "list", check=False)
    assert returncode == 0, err
    assert "[/x][b]" in out


def test_prune_keeps_the_chain_verifiable_and_tampering_detectable(tmp_path: Path) -> None:
    """A retention limit deletes the oldest records; verify checks the chain from the first
    one left (the prune record names where it starts); deleting more is still caught."""
    populate(tmp_path, inferences=4)  # records 1-5
    with sqlite3.connect(tmp_path / "genaiops.db") as conn:
        (cutoff_us,) = conn.execute("SELECT ts_us FROM audit_log WHERE seq = 4").fetchone()
    code, out, _ = cli(tmp_path, "audit", "verify", "--json")
    anchor = json.loads(out)["head_hash"]

    before = str(cutoff_us / 1_000_000)
    code, _, err = cli(tmp_path, "audit", "prune", "--before", before, check=False)
    assert code != 0  # not confirmed (no terminal to answer): nothing deleted
    assert json.loads(cli(tmp_path, "audit", "verify", "--json")[1])["records"] == 5
    code, out, _ = cli(tmp_path, "audit", "prune", "--before", before, "--yes", "--json")
    pruned = json.loads(out)
    assert (pruned["pruned"], pruned["through_seq"]) == (3, 3)

    code, out, _ = cli(tmp_path, "audit", "verify", "--json", "--anchor", f"5:{anchor}")
    result = json.loads(out)
    assert result["ok"] and result["pruned_through"] == 3 and result["records"] == 3
    _, out, _ = cli(tmp_path, "audit", "export")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in records] == [4, 5, 6]
    assert records[-1]["event"] == "audit.pruned" and records[-1]["actor"] == "cli"
    assert records[-1]["detail"]["through_hash"] == records[0]["prev_hash"]

    tamper(tmp_path, "DELETE FROM audit_log WHERE seq = 4")
    code, _, err = cli(tmp_path, "audit", "verify", check=False)
    assert code == 1 and "record 1 is missing" in err
