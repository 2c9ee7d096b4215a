"""Shared fixtures: real genaiops servers on free ports, with the real bundled models."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    data_dir: Path
    config: Path
    # The installation's administrator key (created on first start), if auth is on.
    key: str | None = None

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


# OpenAI clients made by a test, closed when it ends (see ``openai_client``).
_CLIENTS: list[Any] = []


def openai_client(base_url: str, api_key: str | None, **kw: Any) -> Any:
    """An official client for one test: closed at the test's end, so its pooled
    connections never reach the garbage collector still open."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, **kw)
    _CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_openai_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def genaiops_cli(
    *args: str, data_dir: Path, config: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the genaiops CLI against a data directory (the same database a server uses)."""
    command = [sys.executable, "-m", "genaiops", *args]
    if config is not None:
        command += ["--config", str(config)]
    result = subprocess.run(
        command,
        env=os.environ | {"GENAIOPS_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"genaiops {' '.join(args)} failed:\n{result.stderr}")
    return result


def create_key(data_dir: Path, *args: str, config: Path | None = None) -> str:
    """Create an API key with the CLI; returns its secret."""
    result = genaiops_cli("keys", "create", *args, "--json", data_dir=data_dir, config=config)
    key: str = json.loads(result.stdout)["key"]
    return key


def start_server(
    tmp: Path,
    name: str,
    config: str,
    env: dict[str, str] | None = None,
    data_dir: Path | None = None,
    watch: list[tuple[int, int]] | None = None,
) -> Server:
    """Start ``genaiops serve`` and wait until /readyz answers 200. ``watch`` collects
    (/healthz status, /readyz status) at every poll once the server answers at all."""
    port = free_port()
    cfg = tmp / f"{name}.toml"
    cfg.write_text(config)
    log = tmp / f"{name}.log"
    data = data_dir or tmp / f"{name}-data"
    environment = os.environ | {"GENAIOPS_DATA_DIR": str(data)} | (env or {})
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
            if watch is not None:
                health = httpx.get(url + "/healthz", timeout=2).status_code
                watch.append((health, httpx.get(url + "/readyz", timeout=2).status_code))
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                key_file = data / "admin_key"
                key = key_file.read_text().strip() if key_file.exists() else None
                return Server(url, process, log, data, cfg, key)
        except httpx.HTTPError:
            pass
        time.sleep(0.2 if watch is None else 0.02)
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
    data = tmp / "upstream-data"
    # The gateway authenticates to it with a key of its own, like any remote provider.
    gateway_key = create_key(data, "--tenant", "gateway", "--role", "user")
    server = start_server(
        tmp, "upstream", 'bundled_models = ["smollm2-135m-instruct"]\n', data_dir=data
    )
    server.key = gateway_key
    yield server
    stop_server(server)


JWT_ISSUER = "https://idp.example.test"
JWT_AUDIENCE = "genaiops"
METRICS_TOKEN = "scrape-secret-for-tests"


@dataclass
class JWTKeys:
    rsa: Any
    ec: Any
    jwks: Path


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> JWTKeys:
    """An identity provider's signing keys, published to the gateway as a JWKS file."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = [
        json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())) | {"kid": "rsa-1", "use": "sig"},
        json.loads(ECAlgorithm.to_jwk(ec_key.public_key())) | {"kid": "ec-1", "use": "sig"},
    ]
    path = tmp_path_factory.mktemp("idp") / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return JWTKeys(rsa_key, ec_key, path)


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, upstream: Server, jwt_keys: JWTKeys
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("gateway")
    config = f"""
[server]
max_body_bytes = 1048576

[auth]
key_cache_ttl_s = 0.5

[auth.jwt]
jwks_file = "{jwt_keys.jwks}"
issuer = "{JWT_ISSUER}"
audience = "{JWT_AUDIENCE}"

[metrics]
token = "{METRICS_TOKEN}"

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
    assert upstream.key is not None
    server = start_server(tmp, "gateway", config, env={UPSTREAM_KEY_ENV: upstream.key})
    yield server
    stop_server(server)
