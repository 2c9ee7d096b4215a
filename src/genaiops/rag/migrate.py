"""Copying collections between stores (``genaiops collections copy``): from the embedded
store to PostgreSQL + pgvector when a deployment scales out, or back. Documents move with
their chunks and vectors as stored, so nothing is chunked or embedded again.

The copy is additive and resumable: a target collection is created with the source's
settings when missing, a document whose content hash the target already holds is skipped,
and each document is written in one transaction of the target, so an interrupted copy
run again finishes the job. Target documents absent from the source are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from genaiops.errors import GenaiopsError, InvalidRequest, NotFound
from genaiops.rag.documents import LoadedDocument
from genaiops.rag.stores.base import Collection, VectorStore

# Called with ("document", {"collection", "key", "outcome"}) after each document.
CopyProgress = Callable[[str, dict[str, Any]], None]
_PAGE = 200


@dataclass
class CopyReport:
    collections: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"collections": self.collections, "failed": self.failed}


def selected(source: VectorStore, tenant: str | None, names: list[str] | None) -> list[Collection]:
    """The source's collections to copy (of one tenant, and by name, when given)."""
    found = source.list_collections(tenant)
    if names:
        missing = sorted(set(names) - {c.spec.name for c in found})
        if missing:
            raise NotFound(
                f"No collection named {', '.join(repr(n) for n in missing)} in the source store.",
                param="name",
                code="collection_not_found",
            )
        found = [c for c in found if c.spec.name in names]
    return found


def _target(target: VectorStore, collection: Collection) -> Collection:
    spec = collection.spec
    try:
        existing = target.get_collection(spec.tenant, spec.name)
    except NotFound:
        return target.create_collection(spec)
    if (existing.spec.embedder, existing.spec.dim) != (spec.embedder, spec.dim):
        raise InvalidRequest(
            f"the target's collection '{spec.name}' uses embedder {existing.spec.embedder} "
            f"({existing.spec.dim} dimensions), the source's {spec.embedder} ({spec.dim})",
            code="collection_mismatch",
        )
    return existing


def copy_collection(
    source: VectorStore, target: VectorStore, collection: Collection, notify: CopyProgress
) -> dict[str, Any]:
    spec = collection.spec
    # Opened by name: refused, with a clear error, when encrypted under another key.
    collection = source.get_collection(spec.tenant, spec.name)
    into = _target(target, collection)
    copied = skipped = chunks = 0
    with target.bulk(into):
        offset = 0
        while page := source.list_documents(collection, offset, _PAGE):
            offset += len(page)
            for record in page:
                if target.document_hash(into, record.key) == record.content_hash:
                    skipped += 1
                    notify(
                        "document",
                        {"collection": spec.name, "key": record.key, "outcome": "unchanged"},
                    )
                    continue
                stored, hashes, vectors = source.document_chunks(collection, record.id)
                if not stored:
                    # Deleted from the source since it was listed (every stored document
                    # has a chunk): nothing to copy, rather than an empty document.
                    notify(
                        "document",
                        {"collection": spec.name, "key": record.key, "outcome": "deleted"},
                    )
                    continue
                document = LoadedDocument(
                    source=record.source,
                    title=record.title,
                    sections=[],
                    kind=record.kind,
                    content_hash=record.content_hash,
                    locator=record.locator,
                    metadata=record.metadata,
                )
                target.replace_document(into, document, stored, hashes, vectors)
                copied += 1
                chunks += len(stored)
                notify(
                    "document", {"collection": spec.name, "key": record.key, "outcome": "copied"}
                )
    after = target.get_collection(spec.tenant, spec.name)
    return {
        "tenant": spec.tenant,
        "name": spec.name,
        "copied": copied,
        "unchanged": skipped,
        "chunks": chunks,
        "documents": after.documents,
        "encrypted": after.encrypted,
    }


def copy_collections(
    source: VectorStore,
    target: VectorStore,
    collections: list[Collection],
    notify: CopyProgress | None = None,
) -> CopyReport:
    """Copy each collection; one that cannot be copied (encrypted under another key, or
    present in the target with another embedder) is reported and the others go on."""
    report = CopyReport()
    for collection in collections:
        try:
            report.collections.append(
                copy_collection(source, target, collection, notify or (lambda *_: None))
            )
        except GenaiopsError as exc:
            report.failed.append(
                {
                    "tenant": collection.spec.tenant,
                    "name": collection.spec.name,
                    "error": exc.message,
                }
            )
    return report
