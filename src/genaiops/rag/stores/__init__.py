"""Stores for collections, documents, chunks and vectors, behind the VectorStore protocol
(stores/base.py). Built-ins register the same way a plugin does (entry-point group
``genaiops.vector_stores``); ``rag.store`` picks one."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from genaiops.errors import ConfigError

if TYPE_CHECKING:
    from genaiops.config import Settings
    from genaiops.rag.stores.base import VectorStore

StoreFactory = Callable[["Settings"], "VectorStore"]
_REGISTRY: dict[str, StoreFactory | str] = {
    "sqlite": "genaiops.rag.stores.sqlite:from_settings",
    "pgvector": "genaiops.rag.stores.pgvector:from_settings",
}


def register_store(kind: str, factory: StoreFactory | str) -> None:
    _REGISTRY[kind] = factory


def create_store(kind: str, settings: Settings) -> VectorStore:
    if kind not in _REGISTRY:
        for ep in entry_points(group="genaiops.vector_stores"):
            _REGISTRY.setdefault(ep.name, ep.value)
    found: Any = _REGISTRY.get(kind)
    if found is None:
        raise ConfigError(f"unknown rag.store {kind!r}; known: {sorted(_REGISTRY)}")
    if isinstance(found, str):
        module, _, attr = found.partition(":")
        found = getattr(import_module(module), attr)
        _REGISTRY[kind] = found
    store: VectorStore = found(settings)
    return store
