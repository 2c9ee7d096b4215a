"""A killed ingest leaves the collection consistent, and running it again finishes the job."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

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


def kill_mid_ingest_then_resume(
    tmp_path: Path,
    env: dict[str, str],
    stored: Callable[[], int],
    check: Callable[[], None],
    sig: signal.Signals = signal.SIGKILL,
) -> None:
    """Ingest 240 files in a CLI process stopped with ``sig`` (SIGKILL: a crash; SIGINT:
    Ctrl-C) after 20 documents are stored: ``check`` passes after it, and the same command
    then finishes the job. ``env`` selects the data directory and store; ``stored`` counts
    the stored documents."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus, files=240)
    cli = [sys.executable, "-m", "genaiops"]
    subprocess.run([*cli, "collections", "create", "policies"], env=env, check=True)
    log = tmp_path / "ingest.log"
    with log.open("w") as err:  # a file: a full pipe would stall the progress bar
        process = subprocess.Popen(
            [*cli, "ingest", str(corpus), "--collection", "policies"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 120
    while stored() < 20:
        assert process.poll() is None, "ingest finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(sig)
    process.wait(timeout=60)
    stderr = log.read_text()
    if sig == signal.SIGINT:
        # Ctrl-C: a one-line message and the conventional exit status, no traceback.
        assert process.returncode == 130, stderr
        assert stderr.strip().splitlines()[-1] == "interrupted", stderr
        assert "Traceback" not in stderr
    before = stored()
    assert 20 <= before < 240
    check()

    result = subprocess.run(
        [*cli, "ingest", str(corpus), "--collection", "policies", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    assert (report["unchanged"], report["added"], report["failed"]) == (before, 240 - before, [])
    assert stored() == 240
    check()
    search = subprocess.run(
        [*cli, "search", "plazo de 242 días", "--collection", "policies", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    hits = json.loads(search.stdout)
    assert hits and hits[0]["source"].endswith(".md")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_stop_mid_ingest_then_resume(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "data" / "rag" / "rag.db"
    kill_mid_ingest_then_resume(
        tmp_path,
        os.environ | {"GENAIOPS_DATA_DIR": str(tmp_path / "data")},
        lambda: documents(db),
        lambda: assert_consistent(db),
        sig,
    )
