"""A killed ingest leaves the collection consistent, and running it again finishes the job."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.rag.test_service import assert_consistent

TOPICS = ["vacaciones", "gastos", "seguridad", "contratos", "viajes", "formación"]


def write_corpus(root: Path, files: int) -> None:
    root.mkdir(parents=True)
    for i in range(files):
        topic = TOPICS[i % len(TOPICS)]
        paragraphs = [
            f"## Sección {j}\n\nDocumento {i} sobre {topic}: la regla número {j} dice que "
            f"el plazo es de {i + j} días hábiles y que el responsable es el equipo {j}."
            for j in range(6)
        ]
        (root / f"doc-{i:04d}.md").write_text(
            f"# Política {i}\n\n" + "\n\n".join(paragraphs), encoding="utf-8"
        )


def documents(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            count = int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        conn.close()
        return count
    except sqlite3.OperationalError:
        return 0


def test_kill_mid_ingest_then_resume(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus, files=240)
    env = os.environ | {"GENAIOPS_DATA_DIR": str(tmp_path / "data")}
    cli = [sys.executable, "-m", "genaiops"]
    subprocess.run([*cli, "collections", "create", "policies"], env=env, check=True)
    db = tmp_path / "data" / "rag" / "rag.db"
    process = subprocess.Popen(
        [*cli, "ingest", str(corpus), "--collection", "policies"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while documents(db) < 20:
        assert process.poll() is None, "ingest finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stored = documents(db)
    assert 20 <= stored < 240
    assert_consistent(db)

    result = subprocess.run(
        [*cli, "ingest", str(corpus), "--collection", "policies", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["unchanged"] == stored
    assert report["added"] == 240 - stored
    assert report["failed"] == []
    assert documents(db) == 240
    assert_consistent(db)
    search = subprocess.run(
        [*cli, "search", "plazo de 242 días", "--collection", "policies", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    hits = json.loads(search.stdout)
    assert hits and hits[0]["source"].endswith(".md")
