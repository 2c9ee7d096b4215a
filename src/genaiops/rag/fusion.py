"""Search results: weighted reciprocal rank fusion of the retrievers' rankings, and the
hits it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genaiops.rag.stores.base import ChunkRecord

# chunk id -> {"rrf": fused score, "ranks": {retriever: rank}, "scores": {retriever: score}}
Fused = dict[int, dict[str, Any]]


@dataclass
class Hit:
    chunk_id: int
    document_id: int
    text: str
    score: float
    source: str
    title: str
    page: int | None
    heading: str | None
    locator: str | None
    metadata: dict[str, Any]
    retrievers: list[str]
    ranks: dict[str, int]
    scores: dict[str, float]

    def public(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "text": self.text,
            "score": round(self.score, 6),
            "source": self.source,
            "title": self.title,
            "page": self.page,
            "heading": self.heading,
            "locator": self.locator,
            "metadata": self.metadata,
            "retrievers": self.retrievers,
            "ranks": self.ranks,
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
        }


def fuse(ranked: dict[str, list[tuple[int, float]]], weights: dict[str, float], k: float) -> Fused:
    """Each chunk's weighted reciprocal rank fusion score (Cormack et al., 2009, with
    weights): the sum over the retrievers that found it of weight / (k + rank)."""
    fused: Fused = {}
    for retriever, found in ranked.items():
        for rank, (chunk_id, score) in enumerate(found, start=1):
            entry = fused.setdefault(chunk_id, {"rrf": 0.0, "ranks": {}, "scores": {}})
            entry["rrf"] += weights[retriever] / (k + rank)
            entry["ranks"][retriever] = rank
            entry["scores"][retriever] = score
    return fused


def hit(record: ChunkRecord, entry: dict[str, Any], *, hybrid: bool) -> Hit:
    """A hit for a stored chunk: scored by fusion in hybrid search, else by its retriever."""
    return Hit(
        chunk_id=record.id,
        document_id=record.document_id,
        text=record.text,
        score=entry["rrf"] if hybrid else next(iter(entry["scores"].values())),
        source=record.source,
        title=record.title,
        page=record.page,
        heading=record.heading,
        locator=record.locator,
        metadata=record.metadata,
        retrievers=sorted(entry["ranks"]),
        ranks=entry["ranks"],
        scores=entry["scores"],
    )
