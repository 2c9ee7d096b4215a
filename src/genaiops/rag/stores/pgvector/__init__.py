"""The scale-out store: collections, documents, chunks and vectors in PostgreSQL with the
pgvector extension (``rag.store = "pgvector"``), shared by every replica.

- Every change to a document is one transaction that first locks its collection's row:
  writers of one collection take turns (as SQLite's write lock makes them), readers never
  wait, and a crash leaves each document wholly old or wholly new.
- Search (search.py): BM25 in SQL with FTS5's scores, and inner product through the
  collection's HNSW index (hnsw.py) once it passes ``rag.hnsw_threshold`` chunks.
- Encryption at rest works as in the embedded store (rag/crypto.py): sealed text, keyed
  term hashes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from genaiops.errors import ConfigError, NotFound
from genaiops.rag.crypto import FINGERPRINT, Sealer
from genaiops.rag.documents import Chunk, LoadedDocument
from genaiops.rag.stores import rows as records
from genaiops.rag.stores.base import (
    ChunkRecord,
    Collection,
    CollectionSpec,
    DocumentRecord,
    Filters,
    Vectors,
)
from genaiops.rag.stores.pgvector import search
from genaiops.rag.stores.pgvector.hnsw import HnswIndexes
from genaiops.rag.stores.pgvector.pool import Pool, conninfo, vector_text
from genaiops.rag.stores.pgvector.schema import (
    SCHEMA,
    SCHEMA_LOCK,
    SCHEMA_VERSION,
    VERSION_TABLE,
)

if TYPE_CHECKING:
    import psycopg

    from genaiops.config import Settings

__all__ = ["PgVectorStore", "conninfo", "from_settings"]


def _now_us() -> int:
    return time.time_ns() // 1000


class PgVectorStore:
    def __init__(
        self,
        url: str,
        sealer: Sealer,
        *,
        hnsw_threshold: int,
        hnsw_m: int,
        ef_construction: int,
        ef_search: int,
    ):
        self.pool = Pool(url, ef_search=ef_search)
        self.sealer = sealer
        self._plain = Sealer(None)
        self.indexes = HnswIndexes(
            self.pool, threshold=hnsw_threshold, m=hnsw_m, ef_construction=ef_construction
        )
        try:
            self._create_schema()
        except BaseException:
            self.pool.close()
            raise

    @contextmanager
    def _write(self, collection_id: int) -> Iterator[psycopg.Connection[Any]]:
        """A transaction holding the collection's row lock; bumps its version on success."""
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT 1 FROM rag_collections WHERE id = %s FOR UPDATE", (collection_id,)
            ).fetchone()
            if row is None:
                raise NotFound("The collection was deleted.", code="collection_not_found")
            yield conn
            conn.execute(
                "UPDATE rag_collections SET version = version + 1 WHERE id = %s", (collection_id,)
            )

    def _create_schema(self) -> None:
        import psycopg

        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise ConfigError(
                    "the pgvector extension is not available in this database; install "
                    "pgvector on the server and run CREATE EXTENSION vector as a superuser "
                    f"({exc.diag.message_primary or exc})"
                ) from exc
            conn.execute(VERSION_TABLE)
            row = conn.execute("SELECT version FROM rag_schema WHERE id = 1").fetchone()
            if row is not None and row["version"] > SCHEMA_VERSION:
                raise ConfigError(
                    f"the pgvector store's tables are version {row['version']}, newer than "
                    f"this genaiops understands ({SCHEMA_VERSION}); upgrade genaiops"
                )
            conn.execute(SCHEMA)
            if row is None:
                conn.execute(
                    "INSERT INTO rag_schema (id, version) VALUES (1, %s)", (SCHEMA_VERSION,)
                )
            self._key_hashes(conn)

    def _key_hashes(self, conn: psycopg.Connection[Any]) -> None:
        """Encrypted collections written before content hashes were keyed hold bare
        SHA-256 digests of their texts: replace them with keyed ones (``Sealer.
        fingerprint``), once per collection, when the collection's key is configured."""
        conn.execute(
            "ALTER TABLE rag_collections ADD COLUMN IF NOT EXISTS"
            " hashes_keyed BOOLEAN NOT NULL DEFAULT false"
        )
        if not self.sealer.enabled:
            return
        todo = conn.execute(
            "SELECT id FROM rag_collections WHERE key_check = %s AND NOT hashes_keyed FOR UPDATE",
            (self.sealer.check_value(),),
        ).fetchall()
        keyed = f"{FINGERPRINT}%%"
        for row in todo:
            for table, column in (("rag_documents", "content_hash"), ("rag_chunks", "text_hash")):
                stale = conn.execute(
                    f"SELECT id, {column} AS h FROM {table}"
                    f" WHERE collection_id = %s AND {column} NOT LIKE '{keyed}'",
                    (row["id"],),
                ).fetchall()
                with conn.cursor() as cur:
                    cur.executemany(
                        f"UPDATE {table} SET {column} = %s WHERE id = %s",
                        [(self.sealer.fingerprint(r["h"]), r["id"]) for r in stale],
                    )
            conn.execute(
                "UPDATE rag_collections SET hashes_keyed = true WHERE id = %s", (row["id"],)
            )

    def sealer_for(self, collection: Collection) -> Sealer:
        return self.sealer if collection.encrypted else self._plain

    def close(self) -> None:
        self.pool.close()

    # -- collections -----------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec) -> Collection:
        import psycopg

        try:
            with self.pool.connection() as conn:
                conn.execute(
                    "INSERT INTO rag_collections (uid, tenant, name, embedder, dim, chunk_tokens,"
                    " chunk_overlap, language, description, key_check, created_us, hashes_keyed)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, true)",
                    (
                        uuid.uuid4().hex,
                        spec.tenant,
                        spec.name,
                        spec.embedder,
                        spec.dim,
                        spec.chunk_tokens,
                        spec.chunk_overlap,
                        spec.language,
                        spec.description,
                        self.sealer.check_value(),
                        _now_us(),
                    ),
                )
        except psycopg.errors.UniqueViolation:
            raise records.exists(spec.name) from None
        return self.get_collection(spec.tenant, spec.name)

    def get_collection(self, tenant: str, name: str, readable: bool = True) -> Collection:
        """The collection; with ``readable`` (default) refused when it is encrypted with a
        key this store does not hold."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT * FROM rag_collections WHERE tenant = %s AND name = %s", (tenant, name)
            ).fetchone()
        if row is None:
            raise records.not_found(name)
        return records.collection(row, self.sealer) if readable else records.listed_collection(row)

    def list_collections(self, tenant: str | None) -> list[Collection]:
        query, args = "SELECT * FROM rag_collections", tuple[str, ...]()
        if tenant is not None:
            query, args = query + " WHERE tenant = %s", (tenant,)
        with self.pool.connection() as conn:
            rows = conn.execute(query + " ORDER BY tenant, name", args).fetchall()
        return [records.listed_collection(r) for r in rows]

    def delete_collection(self, tenant: str, name: str) -> None:
        # Deleting reads no text: a collection whose key was lost can still be removed.
        collection = self.get_collection(tenant, name, readable=False)
        with self._write(collection.id) as conn:
            # Children first, each in one statement, rather than row by row through the
            # cascades.
            conn.execute("DELETE FROM rag_terms WHERE collection_id = %s", (collection.id,))
            conn.execute("DELETE FROM rag_chunks WHERE collection_id = %s", (collection.id,))
            conn.execute("DELETE FROM rag_documents WHERE collection_id = %s", (collection.id,))
            conn.execute("DELETE FROM rag_collections WHERE id = %s", (collection.id,))
        self.indexes.drop(collection)

    # -- documents -------------------------------------------------------------------------

    def document_hash(self, collection: Collection, key: str) -> str | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT content_hash FROM rag_documents WHERE collection_id = %s AND key = %s",
                (collection.id, key),
            ).fetchone()
        return str(row["content_hash"]) if row else None

    def known_vectors(
        self, collection: Collection, text_hashes: Sequence[str]
    ) -> dict[str, Vectors]:
        unique = list(dict.fromkeys(text_hashes))
        if not unique:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (text_hash) text_hash, embedding::real[] AS v"
                " FROM rag_chunks WHERE collection_id = %s AND text_hash = ANY(%s)",
                (collection.id, unique),
            ).fetchall()
        return {r["text_hash"]: np.asarray(r["v"], dtype=np.float32) for r in rows}

    @staticmethod
    def _drop_document(conn: psycopg.Connection[Any], document_id: int) -> None:
        """Delete a document with its chunks and postings, and take them off the
        collection's totals."""
        gone = conn.execute(
            "SELECT collection_id, COUNT(*) AS n, COALESCE(SUM(n_terms), 0) AS terms"
            " FROM rag_chunks WHERE document_id = %s GROUP BY collection_id",
            (document_id,),
        ).fetchone()
        conn.execute(
            "DELETE FROM rag_terms WHERE chunk_id IN"
            " (SELECT id FROM rag_chunks WHERE document_id = %s)",
            (document_id,),
        )
        conn.execute("DELETE FROM rag_chunks WHERE document_id = %s", (document_id,))
        row = conn.execute(
            "DELETE FROM rag_documents WHERE id = %s RETURNING collection_id", (document_id,)
        ).fetchone()
        if row is not None:
            conn.execute(
                "UPDATE rag_collections SET n_documents = n_documents - 1,"
                " n_chunks = n_chunks - %s, n_terms = n_terms - %s WHERE id = %s",
                (gone["n"] if gone else 0, gone["terms"] if gone else 0, row["collection_id"]),
            )

    def replace_document(
        self,
        collection: Collection,
        document: LoadedDocument,
        chunks: Sequence[Chunk],
        text_hashes: Sequence[str],
        vectors: Vectors,
    ) -> DocumentRecord:
        if len(chunks) != len(vectors) or len(chunks) != len(text_hashes):
            raise ValueError("chunks, hashes and vectors must line up")
        sealer = self.sealer_for(collection)
        seal, term = sealer.seal, sealer.term
        cid = collection.id
        with self._write(cid) as conn:
            old = conn.execute(
                "SELECT id FROM rag_documents WHERE collection_id = %s AND key = %s",
                (cid, document.key),
            ).fetchone()
            if old is not None:
                self._drop_document(conn, old["id"])
            # A changed document keeps its id (its chunks get new ones, never reused).
            inserted = conn.execute(
                "INSERT INTO rag_documents (id, collection_id, key, source, title, kind,"
                " locator, content_hash, metadata, chunks, updated_us) VALUES ("
                " COALESCE(%s, nextval(pg_get_serial_sequence('rag_documents', 'id'))),"
                " %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s) RETURNING id",
                (
                    old["id"] if old is not None else None,
                    cid,
                    document.key,
                    document.source,
                    seal(document.title),
                    document.kind,
                    document.locator,
                    document.content_hash,
                    json.dumps(document.metadata, ensure_ascii=False, default=str),
                    len(chunks),
                    _now_us(),
                ),
            ).fetchone()
            document_id = int(inserted["id"]) if inserted else 0
            ids = [
                r["id"]
                for r in conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('rag_chunks', 'id')) AS id"
                    " FROM generate_series(1, %s)",
                    (len(chunks),),
                )
            ]
            total_terms = 0
            postings_rows: list[tuple[Any, ...]] = []
            with conn.cursor().copy(
                "COPY rag_chunks (id, collection_id, document_id, idx, text, heading, page,"
                " tokens, n_terms, text_hash, embedding) FROM STDIN"
            ) as rows:
                for chunk_id, chunk, text_hash, vector in zip(
                    ids, chunks, text_hashes, vectors, strict=True
                ):
                    indexed = f"{document.title} {chunk.heading or ''} {chunk.text}"
                    counts = Counter(term(t) for t in search.words(indexed, sealer))
                    length = sum(counts.values())
                    total_terms += length
                    postings_rows += [(cid, t, chunk_id, tf, length) for t, tf in counts.items()]
                    rows.write_row(
                        (
                            chunk_id,
                            cid,
                            document_id,
                            chunk.index,
                            seal(chunk.text),
                            seal(chunk.heading) if chunk.heading is not None else None,
                            chunk.page,
                            chunk.tokens,
                            length,
                            text_hash,
                            vector_text(vector),
                        )
                    )
            with conn.cursor().copy(
                "COPY rag_terms (collection_id, term, chunk_id, tf, dl) FROM STDIN"
            ) as postings:
                for posting in postings_rows:
                    postings.write_row(posting)
            conn.execute(
                "UPDATE rag_collections SET n_documents = n_documents + 1,"
                " n_chunks = n_chunks + %s, n_terms = n_terms + %s WHERE id = %s",
                (len(chunks), total_terms, cid),
            )
            # Read back in the same transaction (see the SQLite store).
            row = conn.execute(
                "SELECT * FROM rag_documents WHERE id = %s", (document_id,)
            ).fetchone()
        self.indexes.after_write(collection, len(chunks))
        return self._document_record(collection, row)

    def _document(self, collection: Collection, document_id: int) -> DocumentRecord:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT * FROM rag_documents WHERE id = %s AND collection_id = %s",
                (document_id, collection.id),
            ).fetchone()
        if row is None:
            raise NotFound(
                f"No document with id {document_id} in this collection.",
                param="document_id",
                code="document_not_found",
            )
        return self._document_record(collection, row)

    def _document_record(self, collection: Collection, row: Any) -> DocumentRecord:
        return records.document(row, self.sealer_for(collection))

    def delete_document(self, collection: Collection, document_id: int) -> DocumentRecord:
        record = self._document(collection, document_id)
        with self._write(collection.id) as conn:
            self._drop_document(conn, document_id)
        return record

    def list_documents(
        self, collection: Collection, offset: int = 0, limit: int = 100
    ) -> list[DocumentRecord]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM rag_documents WHERE collection_id = %s ORDER BY id"
                " LIMIT %s OFFSET %s",
                (collection.id, limit, offset),
            ).fetchall()
        return [self._document_record(collection, r) for r in rows]

    def bulk(self, collection: Collection) -> AbstractContextManager[None]:
        return self.indexes.bulk(collection)

    def document_chunks(
        self, collection: Collection, document_id: int
    ) -> tuple[list[Chunk], list[str], Vectors]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT c.idx, c.text, c.heading, c.page, c.tokens, c.text_hash,"
                " c.embedding::real[] AS v FROM rag_chunks c"
                " WHERE c.document_id = %s AND c.collection_id = %s ORDER BY c.idx",
                (document_id, collection.id),
            ).fetchall()
        sealer = self.sealer_for(collection)
        chunks = [records.stored_chunk(r, sealer) for r in rows]
        vectors = np.asarray([r["v"] for r in rows], dtype=np.float32)
        return (
            chunks,
            [r["text_hash"] for r in rows],
            vectors.reshape(len(rows), collection.spec.dim),
        )

    # -- search ----------------------------------------------------------------------------

    def lexical(
        self, collection: Collection, query: str, k: int, filters: Filters | None
    ) -> list[tuple[int, float]]:
        with self.pool.connection() as conn:
            return search.bm25(conn, collection, self.sealer_for(collection), query, k, filters)

    def dense(
        self, collection: Collection, vector: Vectors, k: int, filters: Filters | None
    ) -> list[tuple[int, float]]:
        indexed = collection.chunks >= self.indexes.threshold
        if indexed:
            self.indexes.check(collection)
        with self.pool.connection() as conn:
            return search.nearest(conn, collection, vector, k, filters, indexed=indexed)

    def chunks(self, collection: Collection, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        if not ids:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT c.id, c.document_id, c.idx, c.text, c.page, c.heading, d.source,"
                " d.title, d.locator, d.metadata FROM rag_chunks c"
                " JOIN rag_documents d ON d.id = c.document_id"
                " WHERE c.collection_id = %s AND c.id = ANY(%s)",
                (collection.id, [int(i) for i in ids]),
            ).fetchall()
        sealer = self.sealer_for(collection)
        return {int(r["id"]): records.chunk(r, sealer) for r in rows}


def from_settings(settings: Settings) -> PgVectorStore:
    cfg = settings.rag
    url = cfg.url or settings.storage.url
    if not url:
        raise ConfigError(
            "rag.store = 'pgvector' needs a PostgreSQL URL: set rag.url (or storage.url)"
        )
    return PgVectorStore(
        url,
        Sealer.from_env(cfg.encryption_key_env),
        hnsw_threshold=cfg.pgvector_hnsw_threshold,
        hnsw_m=cfg.pgvector_hnsw_m,
        ef_construction=cfg.pgvector_hnsw_ef_construction,
        ef_search=cfg.hnsw_ef_search,
    )
