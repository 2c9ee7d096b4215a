"""Any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, TEI, Ollama, another
genaiops), called synchronously in batches; failures become UpstreamError (502)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from genaiops.errors import ConfigError, UpstreamError
from genaiops.rag.embedders import Vectors, normalise


class RemoteEmbedder:
    def __init__(self, spec: dict[str, Any]):
        base_url = spec.get("base_url")
        if not base_url:
            raise ConfigError(f"embedder {spec.get('name')!r}: a remote embedder needs base_url")
        self.name = str(spec.get("name", "remote"))
        self.model = str(spec.get("model") or self.name)
        self.dim = int(spec.get("dim") or 0)
        self.batch_size = int(spec.get("batch_size", 64))
        headers = {}
        key_env = spec.get("api_key_env")
        if key_env and os.environ.get(key_env):
            headers["Authorization"] = f"Bearer {os.environ[key_env]}"
        self._url = str(base_url).rstrip("/") + "/embeddings"
        self._client = httpx.Client(headers=headers, timeout=float(spec.get("timeout_s", 60)))

    def _batch(self, texts: list[str]) -> Any:
        try:
            r = self._client.post(self._url, json={"model": self.model, "input": texts})
        except httpx.HTTPError as exc:
            raise UpstreamError(f"embedder {self.name}: {self._url} unreachable: {exc}") from exc
        if r.status_code != 200:
            raise UpstreamError(f"embedder {self.name}: {self._url} answered {r.status_code}")
        try:
            data = sorted(r.json()["data"], key=lambda item: item["index"])
            return [item["embedding"] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"embedder {self.name}: malformed answer") from exc

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows: list[Any] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._batch(list(texts[start : start + self.batch_size])))
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = normalise(np.asarray(rows, dtype=np.float32))
        if self.dim and vectors.shape[1] != self.dim:
            raise UpstreamError(
                f"embedder {self.name}: expected {self.dim} dimensions, got {vectors.shape[1]}"
            )
        self.dim = vectors.shape[1]
        return vectors
