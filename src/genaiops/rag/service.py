"""RagService: collections per tenant, ingestion, hybrid search, and grounded prompts with
citations. Faces (HTTP routes, CLI) call only this; storage goes through the VectorStore
protocol and embeddings through the Embedders registry.

Ingestion works one document at a time: load, chunk, embed the chunks whose text is new
to the collection (vectors of unchanged chunks are reused by text hash), then replace the
document in one store transaction. An unchanged document (same content hash) is skipped,
so rerunning an interrupted ingest finishes the job without redoing what was stored.
One bad file is reported and skipped; it never stops the others.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from genaiops.config import Settings
from genaiops.errors import InvalidRequest
from genaiops.rag import chunking
from genaiops.rag.documents import LoadedDocument, LoadError
from genaiops.rag.embedders import Embedders, Vectors
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


@dataclass
class IngestReport:
    documents: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
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
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
        }


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
        tokens = chunk_tokens or cfg.chunk_tokens
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
    ) -> IngestReport:
        """Ingest lazily loaded inputs: (label, loader) pairs, so one failing loader is
        reported under its label and ingestion goes on."""
        report = IngestReport()
        started = time.perf_counter()
        notify = progress or (lambda _event, _info: None)
        for label, load in loads:
            try:
                documents = load()
            except LoadError as exc:
                report.failed.append({"source": label, "error": exc.message})
                notify("failed", {"source": label, "error": exc.message})
                continue
            for document in documents:
                outcome, chunks = self._ingest_one(collection, document, report)
                notify(outcome, {"source": document.key, "chunks": chunks})
            notify("file", {"source": label})
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_one(
        self, collection: Collection, document: LoadedDocument, report: IngestReport
    ) -> tuple[str, int]:
        report.documents += 1
        previous = self.store.document_hash(collection, document.key)
        if previous == document.content_hash:
            report.unchanged += 1
            return "unchanged", 0
        spec = collection.spec
        chunks = chunking.chunk_document(
            document, chunk_tokens=spec.chunk_tokens, overlap_tokens=spec.chunk_overlap
        )
        if not chunks:
            report.failed.append({"source": document.key, "error": "no text to index"})
            return "failed", 0
        texts = [chunking.embedding_text(c, document.title) for c in chunks]
        hashes = [hashlib.sha256(f"{spec.embedder}\x00{t}".encode()).hexdigest() for t in texts]
        known = self.store.known_vectors(collection, hashes)
        missing = [i for i, h in enumerate(hashes) if h not in known]
        import numpy as np

        vectors = np.zeros((len(chunks), spec.dim), dtype=np.float32)
        if missing:
            fresh = self.embedders.get(spec.embedder).embed([texts[i] for i in missing])
            for row, i in enumerate(missing):
                vectors[i] = fresh[row]
        for i, h in enumerate(hashes):
            if h in known:
                vectors[i] = known[h]
        self.store.replace_document(collection, document, chunks, hashes, vectors)
        report.embedded += len(missing)
        report.reused += len(chunks) - len(missing)
        report.chunks += len(chunks)
        if previous is None:
            report.added += 1
            return "added", len(chunks)
        report.updated += 1
        return "updated", len(chunks)

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
        progress: Progress | None = None,
    ) -> IngestReport:
        from genaiops.rag import loaders

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

        return self.ingest(collection, ((str(p), loader(p)) for p in files), progress)

    def ingest_bytes(
        self,
        tenant: str,
        name: str,
        uploads: Sequence[tuple[str, bytes]],
        *,
        text_field: str | None = None,
        id_field: str | None = None,
        metadata_fields: list[str] | None = None,
    ) -> IngestReport:
        from genaiops.rag import loaders

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

        return self.ingest(collection, ((f, loader(f, d)) for f, d in uploads))

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
        progress: Progress | None = None,
    ) -> IngestReport:
        from genaiops.rag import loaders

        collection = self.collection(tenant, name)
        label = f"sql:{table}" if table else "sql:query"

        def load() -> list[LoadedDocument]:
            return loaders.load_sql(
                url,
                query=query,
                table=table,
                text_field=text_field,
                id_field=id_field,
                metadata_fields=metadata_fields,
            )

        return self.ingest(collection, [(label, load)], progress)

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
        weights = {"lexical": cfg.lexical_weight, "dense": cfg.dense_weight}
        fused: dict[int, dict[str, Any]] = {}
        for retriever, found in ranked.items():
            for rank, (chunk_id, score) in enumerate(found, start=1):
                entry = fused.setdefault(chunk_id, {"rrf": 0.0, "ranks": {}, "scores": {}})
                # Weighted reciprocal rank fusion (Cormack et al., 2009, with weights).
                entry["rrf"] += weights[retriever] / (cfg.rrf_k + rank)
                entry["ranks"][retriever] = rank
                entry["scores"][retriever] = score
        if mode == "hybrid":
            order = sorted(fused, key=lambda c: -fused[c]["rrf"])
        else:
            retriever = "lexical" if mode == "lexical" else "dense"
            order = [c for c, _ in ranked[retriever]]
        top = order[:top_k]
        records = self.store.chunks(collection, top)
        hits = []
        for chunk_id in top:
            record = records.get(chunk_id)
            if record is None:  # deleted between the index and the read
                continue
            entry = fused[chunk_id]
            score = entry["rrf"] if mode == "hybrid" else next(iter(entry["scores"].values()))
            hits.append(
                Hit(
                    chunk_id=chunk_id,
                    document_id=record.document_id,
                    text=record.text,
                    score=score,
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
            )
        return hits

    def relevant(self, hits: Sequence[Hit]) -> list[Hit]:
        """Hits worth grounding an answer on: any lexical match, or a dense match above
        ``rag.min_dense_score``. An empty result means the collection has nothing on it."""
        floor = self.settings.rag.min_dense_score
        return [h for h in hits if "lexical" in h.scores or h.scores.get("dense", -1.0) >= floor]
