"""Records from database rows, shared by the stores: their tables use the same column
names (rag/stores/schema.py, rag/stores/pgvector/schema.py), whatever the database."""

from __future__ import annotations

import json
from typing import Any

from genaiops.errors import InvalidRequest, NotFound
from genaiops.rag.crypto import Sealer
from genaiops.rag.documents import Chunk
from genaiops.rag.stores.base import ChunkRecord, Collection, CollectionSpec, DocumentRecord


def _metadata(value: Any) -> dict[str, Any]:
    # SQLite returns the JSON text, PostgreSQL's JSONB arrives decoded.
    decoded: dict[str, Any] = json.loads(value) if isinstance(value, str | bytes) else value
    return decoded


def collection(row: Any, sealer: Sealer) -> Collection:
    """A collection row (with ``n_documents`` and ``n_chunks``), refused when it is
    encrypted and ``sealer`` holds no key or another one."""
    name = row["name"]
    if row["key_check"] is not None and row["key_check"] != sealer.check_value():
        raise InvalidRequest(
            f"Collection '{name}' is encrypted and the configured key "
            f"({'missing' if not sealer.enabled else 'a different one'}) cannot read it.",
            code="encryption_key_mismatch",
        )
    return listed_collection(row)


def listed_collection(row: Any) -> Collection:
    """A collection row as listed, without checking that it can be read."""
    spec = CollectionSpec(
        tenant=row["tenant"],
        name=row["name"],
        embedder=row["embedder"],
        dim=row["dim"],
        chunk_tokens=row["chunk_tokens"],
        chunk_overlap=row["chunk_overlap"],
        language=row["language"],
        description=row["description"],
    )
    return Collection(
        id=row["id"],
        spec=spec,
        encrypted=row["key_check"] is not None,
        documents=row["n_documents"],
        chunks=row["n_chunks"],
        created_us=row["created_us"],
        version=row["version"],
        uid=row["uid"],
    )


def not_found(name: str) -> NotFound:
    return NotFound(
        f"No collection named '{name}'.", param="collection", code="collection_not_found"
    )


def exists(name: str) -> InvalidRequest:
    return InvalidRequest(
        f"A collection named '{name}' already exists.", param="name", code="collection_exists"
    )


def document(row: Any, sealer: Sealer) -> DocumentRecord:
    return DocumentRecord(
        id=row["id"],
        key=row["key"],
        source=row["source"],
        title=sealer.open(row["title"]),
        kind=row["kind"],
        locator=row["locator"],
        content_hash=row["content_hash"],
        chunks=row["chunks"],
        metadata=_metadata(row["metadata"]),
        updated_us=row["updated_us"],
    )


def chunk(row: Any, sealer: Sealer) -> ChunkRecord:
    """A chunk row joined with its document's source, title, locator and metadata."""
    return ChunkRecord(
        id=int(row["id"]),
        document_id=int(row["document_id"]),
        index=int(row["idx"]),
        text=sealer.open(row["text"]),
        page=row["page"],
        heading=sealer.open(row["heading"]) if row["heading"] is not None else None,
        source=row["source"],
        title=sealer.open(row["title"]),
        locator=row["locator"],
        metadata=_metadata(row["metadata"]),
    )


def stored_chunk(row: Any, sealer: Sealer) -> Chunk:
    """A chunk row as the chunker made it (for copying a document between stores)."""
    return Chunk(
        text=sealer.open(row["text"]),
        index=row["idx"],
        tokens=row["tokens"],
        page=row["page"],
        heading=sealer.open(row["heading"]) if row["heading"] is not None else None,
    )
