"""Groundedness of a retrieval answer: the share of its sentences whose content words are
mostly found in the cited sources.

Lexical support is a deliberately simple, fast proxy (no model call): a sentence counts as
supported when at least half of its content words (accent-folded, longer than three
letters, not stop words) occur in the sources. Sentences with fewer than three content
words ("Sure.", "I hope this helps.") are not judged. It catches answers that drift away
from their sources; it cannot tell a supported sentence from a contradicted one that uses
the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genaiops.rag.chunking import split_sentences
from genaiops.rag.lexical import terms

_STOP = frozenset(
    {"that", "this", "with", "from", "have", "para", "como", "esta", "este", "pero", "sobre"}
    | {"tambien", "cuando", "donde", "porque", "muito", "mais", "quando", "onde", "which"}
    | {"their", "there", "they", "were", "será", "sera", "puede", "pode", "tiene", "todos"}
)


def _content(sentence: str) -> set[str]:
    return {t for t in terms(sentence) if len(t) > 3 and t not in _STOP}


def groundedness(answer: str, sources: Sequence[str]) -> dict[str, Any]:
    vocabulary: set[str] = set()
    for source in sources:
        vocabulary.update(terms(source))
    judged = supported = 0
    unsupported: list[str] = []
    for sentence in split_sentences(answer):
        words = _content(sentence)
        if len(words) < 3:
            continue
        judged += 1
        if len(words & vocabulary) / len(words) >= 0.5:
            supported += 1
        else:
            unsupported.append(sentence[:300])
    score = supported / judged if judged else 1.0
    return {
        "score": round(score, 3),
        "sentences": judged,
        "supported": supported,
        "unsupported": unsupported[:10],
    }
