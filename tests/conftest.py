"""Shared fixtures: real genaiops servers on free ports, with the real bundled models."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from genaiops.engines.bundled import smollm2_path

UPSTREAM_KEY_ENV = "GENAIOPS_TEST_UPSTREAM_KEY"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"


def start_server(tmp: Path, name: str, config: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    cfg = tmp / f"{name}.toml"
    cfg.write_text(config)
    log = tmp / f"{name}.log"
    environment = os.environ | {"GENAIOPS_DATA_DIR": str(tmp / f"{name}-data")} | (env or {})
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "genaiops", "serve", "--config", str(cfg), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server {name} exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return Server(url, process, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server {name} not ready in time:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second genaiops server that the main one proxies to as a remote upstream."""
    tmp = tmp_path_factory.mktemp("upstream")
    server = start_server(tmp, "upstream", 'bundled_models = ["smollm2-135m-instruct"]\n')
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Server) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("gateway")
    config = f"""
[server]
max_body_bytes = 1048576

[scheduler]
max_queue = 8

[[models]]
name = "smollm2-tight"
bundled = "smollm2"
context_length = 2048
max_queue = 1

[[models]]
name = "smollm2-slow"
bundled = "smollm2"
context_length = 2048
timeout_s = 0.5

[[models]]
name = "local-gguf"
path = "{smollm2_path()}"
context_length = 512
chat_template = "chatml"

[[models]]
name = "upstream-chat"
engine = "remote"
base_url = "{upstream.base_url}"
upstream_model = "smollm2-135m-instruct"
api_key_env = "{UPSTREAM_KEY_ENV}"

[[models]]
name = "dead-upstream"
engine = "remote"
base_url = "http://127.0.0.1:{free_port()}/v1"
"""
    server = start_server(tmp, "gateway", config, env={UPSTREAM_KEY_ENV: "test-secret"})
    yield server
    stop_server(server)
