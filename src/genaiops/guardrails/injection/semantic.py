"""The semantic half of the injection classifier: a logistic regression on sentence
embeddings of the multilingual Universal Sentence Encoder (the default RAG embedder).

Character and word n-grams recognise the wording of attacks they have seen; an embedding
recognises the *meaning* of a paraphrase, also across languages (a Portuguese attack lands
near its English and Spanish versions). The classifier mixes the two probabilities,
``p = w * p_ngrams + (1 - w) * p_embedding``, with ``w`` chosen by cross-validation.

Cost: embedding a 2,000-character window takes about 15 ms on two cores, several times
the rest of the guard. It is only paid where it can change the decision: with ``p_ngrams``
known, the mix can reach the cut only if ``w * p_ngrams + (1 - w) >= cut``; other windows
skip the embedding and keep ``p_ngrams`` (which is then below the cut too), so the skip
never changes what is flagged. Most benign text is decided by the n-grams alone.

The encoder is the one RAG uses (``genaiops.rag.embedders.use``), shared within a process.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

DIM = 512
C_GRID = (1.0, 3.0, 10.0)
WEIGHT_GRID = (0.5, 0.7)  # share of the n-gram probability in the mix


@lru_cache(maxsize=1)
def _encoder() -> Any:
    from genaiops.rag.embedders.use import USEEmbedder

    return USEEmbedder({"name": "injection-guard"})


def embed(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised embeddings, one row per text."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.asarray(_encoder().embed(list(texts)), dtype=np.float32)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))), dtype=np.float64)


def needs_embedding(p_ngrams: np.ndarray, weight: float, cut: float) -> np.ndarray:
    """Windows whose mixed probability could still reach ``cut``."""
    return np.asarray(weight * p_ngrams + (1.0 - weight) >= cut)


def fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
    clf.fit(x, y)
    return np.asarray(clf.coef_[0], dtype=np.float32), float(clf.intercept_[0])


def cv_probabilities(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], c: float, seed: int, folds: int
) -> np.ndarray:
    """Out-of-fold probabilities, with the same grouped folds as the n-gram model."""
    from sklearn.model_selection import StratifiedGroupKFold  # type: ignore[import-untyped]

    out = np.zeros(len(y))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for tr, te in splitter.split(x, y, groups):
        coef, b = fit(x[tr], y[tr], c, seed)
        coef = coef.astype(np.float16).astype(np.float32)  # as shipped
        out[te] = sigmoid(x[te] @ coef + b)
    return out
