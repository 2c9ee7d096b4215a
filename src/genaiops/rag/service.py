"""RagService: collections per tenant, ingestion, hybrid search, and grounded prompts with
citations. Faces (HTTP routes, CLI) call only this; storage goes through the VectorStore
protocol and embeddings through the Embedders registry.

Ingestion works one document at a time: load, chunk, embed the chunks whose text is new
to the collection (vectors of unchanged chunks are reused by text hash), then replace the
document in one store transaction. An unchanged document (same content hash) is skipped,
so rerunning an interrupted ingest finishes the job without redoing what was stored.
One bad file is reported and skipped; it never stops the others.

A source that loads completely (a file, a table) is the truth about its documents: those
of its documents that the load no longer produced (rows deleted, or whose text became
empty) are deleted with their chunks. A source that fails to load deletes nothing.
Metadata given for an ingest is merged into each of its documents and is part of what
makes a document changed, so ingesting the same file with other metadata updates it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from genaiops.config import Settings
from genaiops.errors import InvalidRequest, NotFound
from genaiops.rag import chunking
from genaiops.rag.documents import LoadedDocument, LoadError, check_metadata, with_metadata
from genaiops.rag.embedders import Embedders, Vectors
from genaiops.rag.fusion import Hit, fuse, hit
from genaiops.rag.stores import create_store
from genaiops.rag.stores.base import (
    Collection,
    CollectionSpec,
    DocumentRecord,
    Filters,
    VectorStore,
)

log = logging.getLogger("genaiops.rag")

Mode = Literal["hybrid", "dense", "lexical"]
Progress = Callable[[str, dict[str, Any]], None]
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# New chunk texts embedded per call, across consecutive documents.
_EMBED_BATCH = 64


@dataclass
class IngestReport:
    documents: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    # Documents deleted because their source no longer produces them.
    removed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "object": "ingest.report",
            "documents": self.documents,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "reused": self.reused,
            "removed": self.removed,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Plan:
    """A document ready to store once its missing vectors are embedded."""

    document: LoadedDocument
    previous: str | None  # its stored content hash, None when new
    chunks: list[Any]
    texts: list[str]
    hashes: list[str]
    known: dict[str, Any]  # vectors already stored for some of the hashes
    missing: list[int]  # indexes of the chunks to embed


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise InvalidRequest(
            f"invalid collection name {name!r}: use 1-64 lowercase letters, digits, '-' or '_'",
            param="name",
        )
    return name


class RagService:
    def __init__(self, settings: Settings):
        self.settings = settings
        cfg = settings.rag
        self.embedders = Embedders(cfg.embedder_specs())
        self.store: VectorStore = create_store(cfg.store, settings)

    def close(self) -> None:
        self.store.close()
        self.embedders.close()

    # -- collections -----------------------------------------------------------------------

    def create_collection(
        self,
        tenant: str,
        name: str,
        *,
        embedder: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        language: str | None = None,
        description: str = "",
    ) -> Collection:
        cfg = self.settings.rag
        embedder = embedder or cfg.default_embedder
        tokens = cfg.chunk_tokens if chunk_tokens is None else chunk_tokens
        overlap = cfg.chunk_overlap if chunk_overlap is None else chunk_overlap
        # Validate the chunking settings up front rather than at the first ingest.
        chunking.check_sizes(tokens, overlap)
        spec = CollectionSpec(
            tenant=tenant,
            name=check_name(name),
            embedder=embedder,
            dim=self.embedders.dim(embedder),
            chunk_tokens=tokens,
            chunk_overlap=overlap,
            language=language,
            description=description[:1000],
        )
        return self.store.create_collection(spec)

    def collection(self, tenant: str, name: str) -> Collection:
        return self.store.get_collection(tenant, name)

    def collections(self, tenant: str | None) -> list[Collection]:
        return self.store.list_collections(tenant)

    def delete_collection(self, tenant: str, name: str) -> None:
        self.store.delete_collection(tenant, name)

    def documents(
        self, tenant: str, name: str, offset: int = 0, limit: int = 100
    ) -> list[DocumentRecord]:
        return self.store.list_documents(self.collection(tenant, name), offset, limit)

    def delete_document(self, tenant: str, name: str, document_id: int) -> DocumentRecord:
        return self.store.delete_document(self.collection(tenant, name), document_id)

    # -- ingestion -------------------------------------------------------------------------

    def ingest(
        self,
        collection: Collection,
        loads: Iterable[tuple[str, Callable[[], list[LoadedDocument]]]],
        progress: Progress | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        replaces: Mapping[str, str] | None = None,
    ) -> IngestReport:
        """Ingest lazily loaded inputs: (source, loader) pairs, so one failing loader is
        reported under its source and ingestion goes on.

        After a source loads, its stored documents that the load did not produce are
        deleted, and so are all documents of ``replaces[source]`` (an earlier name of the
        same source). ``metadata`` is checked, then merged into every document."""
        extra = check_metadata(metadata)
        report = IngestReport()
        started = time.perf_counter()
        notify = progress or (lambda _event, _info: None)
        with self.store.bulk(collection):
            self._ingest_loads(collection, loads, report, notify, extra, replaces or {})
            # Leaving the bulk context may build the collection's index (pgvector).
            notify("indexing", {"collection": collection.spec.name})
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_loads(
        self,
        collection: Collection,
        loads: Iterable[tuple[str, Callable[[], list[LoadedDocument]]]],
        report: IngestReport,
        notify: Progress,
        extra: dict[str, Any],
        replaces: Mapping[str, str],
    ) -> None:
        stored: dict[str, dict[str, int]] | None = None
        for label, load in loads:
            try:
                documents = load()
            except LoadError as exc:
                report.failed.append({"source": label, "error": exc.message})
                notify("failed", {"source": label, "error": exc.message})
                continue
            self._ingest_documents(
                collection, [with_metadata(d, extra) for d in documents], report, notify
            )
            old_name = replaces.get(label)
            # A whole file yields exactly its own key, which cannot be stale.
            if old_name or not documents or any(d.locator is not None for d in documents):
                if any(d.source != label for d in documents):
                    log.warning("not pruning %s: its loader named other sources", label)
                else:
                    if stored is None:
                        stored = self._stored_keys(collection)
                    keep = {d.key for d in documents}
                    report.removed += self._prune(collection, stored, label, keep)
                    if old_name:
                        report.removed += self._prune(collection, stored, old_name, set())
            notify("file", {"source": label})

    def _stored_keys(self, collection: Collection) -> dict[str, dict[str, int]]:
        """source -> {key: document id} of the documents stored in the collection."""
        stored: dict[str, dict[str, int]] = {}
        offset, page = 0, 1000
        while True:
            records = self.store.list_documents(collection, offset, page)
            for record in records:
                stored.setdefault(record.source, {})[record.key] = record.id
            if len(records) < page:
                return stored
            offset += page

    def _prune(
        self,
        collection: Collection,
        stored: dict[str, dict[str, int]],
        source: str,
        keep: set[str],
    ) -> int:
        """Delete the documents of ``source`` whose keys are not in ``keep``."""
        known = stored.get(source, {})
        removed = 0
        for key in [k for k in known if k not in keep]:
            document_id = known.pop(key)
            try:
                self.store.delete_document(collection, document_id)
            except NotFound:  # replaced or deleted meanwhile
                continue
            removed += 1
        return removed

    def _ingest_documents(
        self,
        collection: Collection,
        documents: Sequence[LoadedDocument],
        report: IngestReport,
        notify: Progress,
    ) -> None:
        """Chunk, embed and store ``documents``. Chunks of consecutive documents are
        embedded together, up to ``_EMBED_BATCH`` new texts per call (a CSV of ten thousand
        one-line rows is a few hundred embedding calls, not ten thousand); each document is
        still stored in its own transaction, so a crash leaves whole documents only."""
        import numpy as np

        spec = collection.spec
        pending: list[_Plan] = []
        keys: set[str] = set()

        def flush() -> None:
            texts = [p.texts[i] for p in pending for i in p.missing]
            fresh = self.embedders.get(spec.embedder).embed(texts) if texts else None
            row = 0
            for plan in pending:
                vectors = np.zeros((len(plan.chunks), spec.dim), dtype=np.float32)
                for i in plan.missing:
                    assert fresh is not None
                    vectors[i] = fresh[row]
                    row += 1
                for i, h in enumerate(plan.hashes):
                    if h in plan.known:
                        vectors[i] = plan.known[h]
                self.store.replace_document(
                    collection, plan.document, plan.chunks, plan.hashes, vectors
                )
                report.embedded += len(plan.missing)
                report.reused += len(plan.chunks) - len(plan.missing)
                report.chunks += len(plan.chunks)
                if plan.previous is None:
                    report.added += 1
                    outcome = "added"
                else:
                    report.updated += 1
                    outcome = "updated"
                notify(outcome, {"source": plan.document.key, "chunks": len(plan.chunks)})
            pending.clear()
            keys.clear()

        waiting = 0
        for document in documents:
            if document.key in keys:
                flush()  # the same key twice: the second must see the first stored
                waiting = 0
            plan = self._plan(collection, document, report)
            if isinstance(plan, str):
                notify(plan, {"source": document.key, "chunks": 0})
                continue
            pending.append(plan)
            keys.add(document.key)
            waiting += len(plan.missing)
            if waiting >= _EMBED_BATCH or len(pending) >= _EMBED_BATCH:
                flush()
                waiting = 0
        flush()

    def _plan(
        self, collection: Collection, document: LoadedDocument, report: IngestReport
    ) -> _Plan | str:
        """What storing ``document`` takes (its chunks and which need embedding), or the
        outcome when nothing does ("unchanged", "failed")."""
        report.documents += 1
        fingerprint = self.store.sealer_for(collection).fingerprint
        document = replace(document, content_hash=fingerprint(document.content_hash))
        previous = self.store.document_hash(collection, document.key)
        if previous == document.content_hash:
            report.unchanged += 1
            return "unchanged"
        spec = collection.spec
        chunks = chunking.chunk_document(
            document, chunk_tokens=spec.chunk_tokens, overlap_tokens=spec.chunk_overlap
        )
        if not chunks:
            report.failed.append({"source": document.key, "error": "no text to index"})
            return "failed"
        texts = [chunking.embedding_text(c, document.title) for c in chunks]
        hashes = [
            fingerprint(hashlib.sha256(f"{spec.embedder}\x00{t}".encode()).hexdigest())
            for t in texts
        ]
        known = self.store.known_vectors(collection, hashes)
        missing = [i for i, h in enumerate(hashes) if h not in known]
        return _Plan(document, previous, chunks, texts, hashes, known, missing)

    def ingest_paths(
        self,
        tenant: str,
        name: str,
        paths: Sequence[Path],
        *,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        text_field: str | None = None,
        id_field: str | None = None,
        metadata_fields: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        prune_under: Sequence[Path] = (),
    ) -> IngestReport:
        """Ingest files and folders. With ``prune_under`` (folders), the documents of files
        below them that no longer exist are deleted too, so that ingesting a folder again
        mirrors it: added, changed and removed files alike."""
        from genaiops.rag import loaders

        check_metadata(metadata)
        collection = self.collection(tenant, name)
        files: list[Path] = []
        for root in paths:
            files.extend(loaders.iter_files(Path(root), include=include, exclude=exclude))
        options = {
            "text_field": text_field,
            "id_field": id_field,
            "metadata_fields": metadata_fields,
            "max_bytes": self.settings.rag.max_upload_bytes,
        }

        def loader(path: Path) -> Callable[[], list[LoadedDocument]]:
            return lambda: loaders.load_file(path, **options)  # type: ignore[arg-type]

        def load(path: Path) -> tuple[str, Callable[[], list[LoadedDocument]]]:
            source = str(path)
            try:
                source.encode("utf-8")
            except UnicodeEncodeError:  # bytes the OS handed over as lone surrogates
                shown = source.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

                def misnamed() -> list[LoadedDocument]:
                    raise LoadError(f"{shown}: the file name is not valid UTF-8; rename the file")

                return shown, misnamed
            return source, loader(path)

        loads = (load(p) for p in files)
        report = self.ingest(collection, loads, progress, metadata=metadata)
        if prune_under:
            roots = [Path(root).expanduser().resolve() for root in prune_under]
            report.removed += self._prune_vanished(collection, roots, progress)
        return report

    def _prune_vanished(
        self, collection: Collection, roots: Sequence[Path], progress: Progress | None
    ) -> int:
        """Delete the documents of files below ``roots`` that are gone from the disk (a
        file kept out by the ingest's filters still exists, so it stays)."""
        stored = self._stored_keys(collection)
        removed = 0
        for source in list(stored):
            path = Path(source)
            inside = path.is_absolute() and any(path.is_relative_to(r) for r in roots)
            if inside and not path.exists():
                count = self._prune(collection, stored, source, set())
                removed += count
                if progress is not None and count:
                    progress("removed", {"source": source, "documents": count})
        return removed

    def ingest_bytes(
        self,
        tenant: str,
        name: str,
        uploads: Sequence[tuple[str, bytes]],
        *,
        text_field: str | None = None,
        id_field: str | None = None,
        metadata_fields: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> IngestReport:
        from genaiops.rag import loaders

        check_metadata(metadata)
        collection = self.collection(tenant, name)

        def loader(filename: str, data: bytes) -> Callable[[], list[LoadedDocument]]:
            return lambda: loaders.load_bytes(
                data,
                filename,
                text_field=text_field,
                id_field=id_field,
                metadata_fields=metadata_fields,
                max_bytes=self.settings.rag.max_upload_bytes,
            )

        loads = ((f, loader(f, d)) for f, d in uploads)
        return self.ingest(collection, loads, metadata=metadata)

    def ingest_sql(
        self,
        tenant: str,
        name: str,
        url: str,
        *,
        text_field: str,
        query: str | None = None,
        table: str | None = None,
        id_field: str | None = None,
        metadata_fields: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        from genaiops.rag import loaders
        from genaiops.rag.loaders.sql import legacy_sql_source, sql_source

        check_metadata(metadata)
        collection = self.collection(tenant, name)
        replaces: dict[str, str] = {}
        try:
            label = sql_source(url, query=query, table=table)
            # Earlier releases named the rows without the database: a first load under
            # the new name replaces them.
            replaces[label] = legacy_sql_source(query=query, table=table)
        except LoadError:
            label = f"sql:{table}" if table else "sql:query"  # the load reports why

        def load() -> list[LoadedDocument]:
            return loaders.load_sql(
                url,
                query=query,
                table=table,
                text_field=text_field,
                id_field=id_field,
                metadata_fields=metadata_fields,
            )

        return self.ingest(
            collection, [(label, load)], progress, metadata=metadata, replaces=replaces
        )

    # -- search ----------------------------------------------------------------------------

    def embed(self, embedder: str, texts: Sequence[str]) -> Vectors:
        return self.embedders.get(embedder).embed(texts)

    def search(
        self,
        tenant: str,
        name: str,
        query: str,
        *,
        top_k: int = 5,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
    ) -> list[Hit]:
        collection = self.collection(tenant, name)
        return self.search_collection(collection, query, top_k=top_k, mode=mode, filters=filters)

    def search_collection(
        self,
        collection: Collection,
        query: str,
        *,
        top_k: int = 5,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
    ) -> list[Hit]:
        if not query.strip():
            raise InvalidRequest("the query is empty", param="query")
        if not 1 <= top_k <= 100:
            raise InvalidRequest("top_k must be between 1 and 100", param="top_k")
        if mode not in ("hybrid", "dense", "lexical"):
            raise InvalidRequest("mode must be hybrid, dense or lexical", param="mode")
        # Each retriever looks deeper than top_k so that fusion has material to work with.
        depth = max(top_k * 4, 20) if mode == "hybrid" else top_k
        ranked: dict[str, list[tuple[int, float]]] = {}
        if mode in ("hybrid", "lexical"):
            ranked["lexical"] = self.store.lexical(collection, query, depth, filters)
        if mode in ("hybrid", "dense"):
            vector = self.embed(collection.spec.embedder, [query])[0]
            ranked["dense"] = self.store.dense(collection, vector, depth, filters)
        cfg = self.settings.rag
        fused = fuse(ranked, {"lexical": cfg.lexical_weight, "dense": cfg.dense_weight}, cfg.rrf_k)
        if mode == "hybrid":
            order = sorted(fused, key=lambda c: -fused[c]["rrf"])
        else:
            order = [c for c, _ in ranked["lexical" if mode == "lexical" else "dense"]]
        top = order[:top_k]
        records = self.store.chunks(collection, top)
        hits = []
        for chunk_id in top:
            record = records.get(chunk_id)
            if record is not None:  # else deleted between the index and the read
                hits.append(hit(record, fused[chunk_id], hybrid=mode == "hybrid"))
        return hits

    def relevant(self, hits: Sequence[Hit], question: str, mode: Mode = "hybrid") -> list[Hit]:
        """The hits worth grounding an answer to ``question`` on (``grounding.relevant``);
        empty when the collection has nothing on it."""
        from genaiops.rag import grounding

        return grounding.relevant(hits, question, self.settings.rag, mode)
