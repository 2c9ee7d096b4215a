"""A throwaway PostgreSQL cluster with pgvector, for the tests and the benchmarks: the
binaries of the pgserver wheel (PostgreSQL 16 with pgvector), located without importing
the package, whose Python side is not needed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ClusterError(RuntimeError):
    pass


def postgres_bin() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError(
            "pgserver (PostgreSQL with pgvector) is not installed; run `make test`, "
            "which installs it"
        )
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not os.access(bindir / "postgres", os.X_OK):
        raise ClusterError(f"no PostgreSQL server in {bindir}")
    return bindir


def _as_postgres_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian postgresql package (installed by
    # scripts/services.sh) provides the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_postgres(*settings: str) -> Iterator[str]:
    """A server on a free port with an empty database named genaiops; yields its URL.
    ``settings`` are extra ``name=value`` server settings."""
    bindir = postgres_bin()
    # Not under a private temporary root: the server runs as the postgres user when this
    # process is root.
    workdir = Path(tempfile.mkdtemp(prefix="genaiops-pg-"))
    data, sockets = workdir / "data", workdir / "sockets"
    data.mkdir()
    sockets.mkdir()
    if os.geteuid() == 0:
        for path in (workdir, data, sockets):
            shutil.chown(path, "postgres")
    subprocess.run(
        _as_postgres_user(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            + ["--encoding=UTF8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    log = workdir / "postgres.log"
    options = ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
    for setting in settings:
        options += ["-c", setting]
    with log.open("wb") as out:
        process = subprocess.Popen(
            _as_postgres_user(
                [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets)]
                + options
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"PostgreSQL did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
            + ["genaiops"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/genaiops"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
