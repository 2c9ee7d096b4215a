"""The VectorStore protocol and the records it returns.

The service (rag/service.py) talks only to this protocol, so a PostgreSQL + pgvector store
can replace the embedded SQLite + FAISS one without touching ingestion or search logic.
Vectors are L2-normalised float32, so inner product is cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from genaiops.rag.crypto import Sealer
from genaiops.rag.documents import Chunk, LoadedDocument
from genaiops.rag.stores.filters import Filters as Filters

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class CollectionSpec:
    tenant: str
    name: str
    embedder: str
    dim: int
    chunk_tokens: int
    chunk_overlap: int
    language: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Collection:
    id: int
    spec: CollectionSpec
    encrypted: bool
    documents: int
    chunks: int
    created_us: int
    # Bumped by every change; derived indexes compare it to know they are stale.
    version: int
    # Unique to this collection, never reused (unlike ``id``, a row id): names its derived
    # indexes, so they can never be taken for those of a collection created later.
    uid: str = ""

    def public(self) -> dict[str, Any]:
        s = self.spec
        return {
            "id": s.name,
            "object": "collection",
            "name": s.name,
            "tenant": s.tenant,
            "embedder": s.embedder,
            "dimensions": s.dim,
            "chunk_tokens": s.chunk_tokens,
            "chunk_overlap": s.chunk_overlap,
            "language": s.language,
            "description": s.description,
            "encrypted": self.encrypted,
            "documents": self.documents,
            "chunks": self.chunks,
            "created_at": self.created_us // 1_000_000,
        }


@dataclass(frozen=True)
class DocumentRecord:
    id: int
    key: str
    source: str
    title: str
    kind: str
    locator: str | None
    content_hash: str
    chunks: int
    metadata: dict[str, Any]
    updated_us: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "document",
            "source": self.source,
            "title": self.title,
            "kind": self.kind,
            "locator": self.locator,
            "chunks": self.chunks,
            "metadata": self.metadata,
            "content_hash": self.content_hash,
            "updated_at": self.updated_us // 1_000_000,
        }


@dataclass
class ChunkRecord:
    id: int
    document_id: int
    index: int
    text: str
    page: int | None
    heading: str | None
    source: str
    title: str
    locator: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


class VectorStore(Protocol):
    def create_collection(self, spec: CollectionSpec) -> Collection: ...
    def get_collection(self, tenant: str, name: str) -> Collection: ...
    def list_collections(self, tenant: str | None) -> list[Collection]: ...
    def delete_collection(self, tenant: str, name: str) -> None: ...
    def sealer_for(self, collection: Collection) -> Sealer:
        """How the collection's text and content hashes are stored (keyed when it is
        encrypted)."""
        ...

    def document_hash(self, collection: Collection, key: str) -> str | None: ...
    def known_vectors(
        self, collection: Collection, text_hashes: Sequence[str]
    ) -> dict[str, Vectors]: ...
    def replace_document(
        self,
        collection: Collection,
        document: LoadedDocument,
        chunks: Sequence[Chunk],
        text_hashes: Sequence[str],
        vectors: Vectors,
    ) -> DocumentRecord: ...
    def delete_document(self, collection: Collection, document_id: int) -> DocumentRecord: ...
    def bulk(self, collection: Collection) -> AbstractContextManager[None]:
        """Held for the length of an ingest run: a store may defer index upkeep to its end
        (one build instead of an update per document)."""
        ...

    def list_documents(
        self, collection: Collection, offset: int = 0, limit: int = 100
    ) -> list[DocumentRecord]: ...
    def document_chunks(
        self, collection: Collection, document_id: int
    ) -> tuple[list[Chunk], list[str], Vectors]:
        """A stored document's chunks in order, with their text hashes and vectors: what
        ``replace_document`` took, so a document copies to another store as it is."""
        ...

    def lexical(
        self, collection: Collection, query: str, k: int, filters: Filters | None
    ) -> list[tuple[int, float]]: ...
    def dense(
        self, collection: Collection, vector: Vectors, k: int, filters: Filters | None
    ) -> list[tuple[int, float]]: ...
    def chunks(self, collection: Collection, ids: Sequence[int]) -> dict[int, ChunkRecord]: ...
    def close(self) -> None: ...
