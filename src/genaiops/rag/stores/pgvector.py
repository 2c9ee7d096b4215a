"""The scale-out store: collections, documents, chunks and vectors in PostgreSQL with the
pgvector extension (``rag.store = "pgvector"``), shared by every replica.

- Dense search is pgvector's inner product: exact over a collection's rows while it is
  small, through the collection's own HNSW index once it passes ``rag.hnsw_threshold``
  chunks (built then, in the background of writes: ``CREATE INDEX CONCURRENTLY``).
- Lexical search is BM25 computed in SQL over ``rag_terms`` with FTS5's formula and
  constants, over the same folded terms (rag/lexical.py), so both stores rank alike.
- Every change to a document is one transaction that first locks its collection's row:
  writers of one collection take turns (as SQLite's write lock makes them), readers never
  wait, and a crash leaves each document wholly old or wholly new.
- Encryption at rest works as in the embedded store (rag/crypto.py): sealed text, keyed
  term hashes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from genaiops.errors import ConfigError, InvalidRequest, NotFound
from genaiops.rag import lexical
from genaiops.rag.crypto import Sealer
from genaiops.rag.documents import Chunk, LoadedDocument
from genaiops.rag.stores.base import (
    ChunkRecord,
    Collection,
    CollectionSpec,
    DocumentRecord,
    Filters,
    Vectors,
    filter_terms,
)
from genaiops.rag.stores.pg_schema import SCHEMA, SCHEMA_LOCK

if TYPE_CHECKING:
    import psycopg

    from genaiops.config import Settings

log = logging.getLogger("genaiops.rag")

# FTS5's bm25() constants, so scores match the embedded store's.
_K1, _B = 1.2, 0.75
_COLUMNS = {"source": "d.source", "kind": "d.kind", "document_id": "d.id"}
# Connections kept open between calls; more are opened under load and closed after.
_IDLE_CONNECTIONS = 8


def _now_us() -> int:
    return time.time_ns() // 1000


def _vector_text(vector: Any) -> str:
    """pgvector's text form; ``%.9g`` round-trips float32 exactly."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"


def _words(text: str, sealer: Sealer) -> list[str]:
    """The terms BM25 counts, as FTS5 counts them in the embedded store: its tokenizer
    splits plaintext terms at underscores (keyed term hashes have none)."""
    words = lexical.terms(text)
    if sealer.enabled:
        return words
    return [part for word in words for part in word.split("_") if part]


def conninfo(url: str) -> str:
    """A libpq URI from a SQLAlchemy-style URL (``postgresql+psycopg://...``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ConfigError(f"rag.url must be a PostgreSQL URL (postgresql://...), got {scheme!r}")
    return "postgresql://" + rest


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
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "rag.store = 'pgvector' needs the PostgreSQL driver: "
                "pip install 'genaiops[postgres]'"
            ) from exc
        self.conninfo = conninfo(url)
        self.sealer = sealer
        self._plain = Sealer(None)
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self._idle: list[psycopg.Connection[Any]] = []
        self._guard = threading.Lock()
        self._indexing: set[str] = set()
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, row_factory=dict_row)
        except psycopg.OperationalError as exc:
            raise ConfigError(f"cannot connect to the pgvector store: {exc}".strip()) from exc
        conn.execute(f"SET hnsw.ef_search = {int(self.ef_search)}")
        return conn

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with self._guard:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self._connect()
        try:
            yield conn
        finally:
            reusable = not conn.closed and not conn.broken
            with self._guard:
                if reusable and len(self._idle) < _IDLE_CONNECTIONS:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    @contextmanager
    def _write(self, collection_id: int) -> Iterator[tuple[psycopg.Connection[Any], int]]:
        """A transaction holding the collection's row lock; yields (connection, version
        before the change) and bumps the version on success."""
        with self._conn() as conn, conn.transaction():
            row = conn.execute(
                "SELECT version FROM rag_collections WHERE id = %s FOR UPDATE", (collection_id,)
            ).fetchone()
            if row is None:
                raise NotFound("The collection was deleted.", code="collection_not_found")
            yield conn, int(row["version"])
            conn.execute(
                "UPDATE rag_collections SET version = version + 1 WHERE id = %s", (collection_id,)
            )

    def _create_schema(self) -> None:
        import psycopg

        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise ConfigError(
                    "the pgvector extension is not available in this database; install "
                    "pgvector on the server and run CREATE EXTENSION vector as a superuser "
                    f"({exc.diag.message_primary or exc})"
                ) from exc
            conn.execute(SCHEMA)

    def sealer_for(self, collection: Collection) -> Sealer:
        return self.sealer if collection.encrypted else self._plain

    def close(self) -> None:
        with self._guard:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- collections -----------------------------------------------------------------------

    @staticmethod
    def _collection(row: dict[str, Any]) -> Collection:
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

    def create_collection(self, spec: CollectionSpec) -> Collection:
        import psycopg

        try:
            with self._conn() as conn:
                conn.execute(
                    "INSERT INTO rag_collections (uid, tenant, name, embedder, dim, chunk_tokens,"
                    " chunk_overlap, language, description, key_check, created_us)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
            raise InvalidRequest(
                f"A collection named '{spec.name}' already exists.",
                param="name",
                code="collection_exists",
            ) from None
        return self.get_collection(spec.tenant, spec.name)

    def get_collection(self, tenant: str, name: str) -> Collection:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT * FROM rag_collections WHERE tenant = %s AND name = %s", (tenant, name)
            ).fetchone()
        if row is None:
            raise NotFound(
                f"No collection named '{name}'.", param="collection", code="collection_not_found"
            )
        if row["key_check"] is not None and row["key_check"] != self.sealer.check_value():
            raise InvalidRequest(
                f"Collection '{name}' is encrypted and the configured key "
                f"({'missing' if not self.sealer.enabled else 'a different one'}) cannot read it.",
                code="encryption_key_mismatch",
            )
        return self._collection(row)

    def list_collections(self, tenant: str | None) -> list[Collection]:
        query, args = "SELECT * FROM rag_collections", tuple[str, ...]()
        if tenant is not None:
            query, args = query + " WHERE tenant = %s", (tenant,)
        with self._conn() as conn:
            rows = conn.execute(query + " ORDER BY tenant, name", args).fetchall()
        return [self._collection(r) for r in rows]

    def delete_collection(self, tenant: str, name: str) -> None:
        collection = self.get_collection(tenant, name)
        with self._write(collection.id) as (conn, _):
            # Children first, each in one statement, rather than row by row through the
            # cascades.
            conn.execute("DELETE FROM rag_terms WHERE collection_id = %s", (collection.id,))
            conn.execute("DELETE FROM rag_chunks WHERE collection_id = %s", (collection.id,))
            conn.execute("DELETE FROM rag_documents WHERE collection_id = %s", (collection.id,))
        with self._conn() as conn:
            conn.execute("DELETE FROM rag_collections WHERE id = %s", (collection.id,))
            conn.execute(f'DROP INDEX IF EXISTS "{self._index_name(collection)}"')

    # -- documents -------------------------------------------------------------------------

    def document_hash(self, collection: Collection, key: str) -> str | None:
        with self._conn() as conn:
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
        with self._conn() as conn:
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
        with self._write(cid) as (conn, _):
            old = conn.execute(
                "SELECT id FROM rag_documents WHERE collection_id = %s AND key = %s",
                (cid, document.key),
            ).fetchone()
            if old is not None:
                self._drop_document(conn, old["id"])
            inserted = conn.execute(
                "INSERT INTO rag_documents (collection_id, key, source, title, kind, locator,"
                " content_hash, metadata, chunks, updated_us)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s) RETURNING id",
                (
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
                    counts = Counter(term(t) for t in _words(indexed, sealer))
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
                            _vector_text(vector),
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
        self._index_if_large(collection)
        return self._document(collection, document_id)

    def _document(self, collection: Collection, document_id: int) -> DocumentRecord:
        with self._conn() as conn:
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

    def _document_record(self, collection: Collection, row: dict[str, Any]) -> DocumentRecord:
        return DocumentRecord(
            id=row["id"],
            key=row["key"],
            source=row["source"],
            title=self.sealer_for(collection).open(row["title"]),
            kind=row["kind"],
            locator=row["locator"],
            content_hash=row["content_hash"],
            chunks=row["chunks"],
            metadata=row["metadata"],
            updated_us=row["updated_us"],
        )

    def delete_document(self, collection: Collection, document_id: int) -> DocumentRecord:
        record = self._document(collection, document_id)
        with self._write(collection.id) as (conn, _):
            self._drop_document(conn, document_id)
        return record

    def list_documents(
        self, collection: Collection, offset: int = 0, limit: int = 100
    ) -> list[DocumentRecord]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT * FROM rag_documents WHERE collection_id = %s ORDER BY id"
                " LIMIT %s OFFSET %s",
                (collection.id, limit, offset),
            ).fetchall()
        return [self._document_record(collection, r) for r in rows]

    # -- the HNSW index --------------------------------------------------------------------

    @staticmethod
    def _index_name(collection: Collection) -> str:
        return f"rag_hnsw_{collection.uid}"

    def _index_if_large(self, collection: Collection) -> None:
        """Give a collection that has passed the threshold its HNSW index (once; a build
        that was interrupted, which leaves an invalid index, is redone)."""
        name = self._index_name(collection)
        with self._guard:
            if name in self._indexing:
                return
            self._indexing.add(name)
        try:
            with self._conn() as conn:
                row = conn.execute(
                    "SELECT c.n_chunks, i.indisvalid FROM rag_collections c"
                    " LEFT JOIN pg_class k ON k.relname = %s"
                    " LEFT JOIN pg_index i ON i.indexrelid = k.oid WHERE c.id = %s",
                    (name, collection.id),
                ).fetchone()
                if row is None or row["n_chunks"] < self.hnsw_threshold or row["indisvalid"]:
                    return
                if row["indisvalid"] is False:
                    conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
                log.info(
                    "building the HNSW index of collection %s (%d chunks)",
                    collection.spec.name,
                    row["n_chunks"],
                )
                conn.execute("SET maintenance_work_mem = '512MB'")
                conn.execute(
                    f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON rag_chunks'
                    f" USING hnsw ((embedding::vector({int(collection.spec.dim)}))"
                    f" vector_ip_ops) WITH (m = {int(self.hnsw_m)},"
                    f" ef_construction = {int(self.ef_construction)})"
                    f" WHERE collection_id = {int(collection.id)}"
                )
                conn.execute("RESET maintenance_work_mem")
                conn.execute("ANALYZE rag_chunks")
        finally:
            with self._guard:
                self._indexing.discard(name)

    def has_index(self, collection: Collection) -> bool:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT i.indisvalid FROM pg_class k JOIN pg_index i ON i.indexrelid = k.oid"
                " WHERE k.relname = %s",
                (self._index_name(collection),),
            ).fetchone()
        return bool(row and row["indisvalid"])

    # -- search ----------------------------------------------------------------------------

    @staticmethod
    def _filter_sql(filters: Filters | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for field, values in filter_terms(filters):
            column = _COLUMNS.get(field)
            if column is not None:
                clauses.append(f"{column} = ANY(%s)")
                args.append([v if field != "document_id" else int(v) for v in values])
            else:
                # JSON values compare as JSON: 1 matches 1.0, "1" does not match 1.
                clauses.append("d.metadata -> %s = ANY(%s::jsonb[])")
                args += [field, [json.dumps(v) for v in values]]
        return (" AND " + " AND ".join(clauses), args) if clauses else ("", [])

    def lexical(
        self, collection: Collection, query: str, k: int, filters: Filters | None
    ) -> list[tuple[int, float]]:
        sealer = self.sealer_for(collection)
        words = lexical.meaningful_terms(query) or list(dict.fromkeys(lexical.terms(query)))
        unique = list(dict.fromkeys(sealer.term(t) for t in _words(" ".join(words[:64]), sealer)))
        if not unique or collection.chunks == 0:
            return []
        where, args = self._filter_sql(filters)
        with self._conn() as conn:
            stats = conn.execute(
                "SELECT n_chunks, n_terms FROM rag_collections WHERE id = %s", (collection.id,)
            ).fetchone()
            if stats is None or not stats["n_chunks"]:
                return []
            found = conn.execute(
                "SELECT term, COUNT(*) AS df FROM rag_terms"
                " WHERE collection_id = %s AND term = ANY(%s) GROUP BY term",
                (collection.id, unique),
            ).fetchall()
            if not found:
                return []
            n, avgdl = stats["n_chunks"], stats["n_terms"] / stats["n_chunks"]
            # FTS5's idf, floored the same way for terms in more than half the chunks.
            idf = {
                r["term"]: max(float(np.log((n - r["df"] + 0.5) / (r["df"] + 0.5))), 1e-6)
                for r in found
            }
            joins = (
                " JOIN rag_chunks c ON c.id = p.chunk_id JOIN rag_documents d"
                " ON d.id = c.document_id"
                if where
                else ""
            )
            rows = conn.execute(
                "SELECT p.chunk_id AS id, SUM(q.idf * p.tf * %s / (p.tf + %s * (%s + %s * p.dl"
                " / %s::float8))) AS score"
                " FROM unnest(%s::text[], %s::float8[]) AS q(term, idf)"
                " JOIN rag_terms p ON p.collection_id = %s AND p.term = q.term"
                f"{joins} WHERE TRUE{where}"
                " GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT %s",
                (
                    _K1 + 1,
                    _K1,
                    1 - _B,
                    _B,
                    avgdl,
                    list(idf),
                    list(idf.values()),
                    collection.id,
                    *args,
                    k,
                ),
            ).fetchall()
        return [(int(r["id"]), float(r["score"])) for r in rows]

    def dense(
        self, collection: Collection, vector: Vectors, k: int, filters: Filters | None
    ) -> list[tuple[int, float]]:
        query = _vector_text(vector)
        dim = int(collection.spec.dim)
        where, args = self._filter_sql(filters)
        joins = " JOIN rag_documents d ON d.id = c.document_id" if where else ""
        with self._conn() as conn:
            if collection.chunks >= self.hnsw_threshold:
                # The partial index's expression and predicate, the collection id written
                # as the same literal (a bound parameter, typed otherwise, would keep the
                # planner from proving the index applies); sorting is discouraged so the
                # planner walks the graph even while its statistics describe a smaller
                # table. With filters, the graph's nearest chunks are filtered
                # afterwards; if fewer than k pass, search exactly below.
                with conn.transaction():
                    conn.execute("SET LOCAL enable_sort = off")
                    rows = conn.execute(
                        f"SELECT c.id, (c.embedding::vector({dim})) <#> %s::vector({dim}) AS d"
                        f" FROM rag_chunks c{joins}"
                        f" WHERE c.collection_id = {int(collection.id)}{where}"
                        " ORDER BY d LIMIT %s",
                        (query, *args, k),
                    ).fetchall()
                if len(rows) >= k or not where:
                    return [(int(r["id"]), -float(r["d"])) for r in rows]
            # Exact: the uncast expression matches no index, so every allowed chunk of the
            # collection is compared.
            rows = conn.execute(
                f"SELECT c.id, c.embedding <#> %s::vector AS d FROM rag_chunks c{joins}"
                f" WHERE c.collection_id = %s{where} ORDER BY d, c.id LIMIT %s",
                (query, collection.id, *args, k),
            ).fetchall()
        return [(int(r["id"]), -float(r["d"])) for r in rows]

    def chunks(self, collection: Collection, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        if not ids:
            return {}
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT c.id, c.document_id, c.idx, c.text, c.page, c.heading, d.source,"
                " d.title, d.locator, d.metadata FROM rag_chunks c"
                " JOIN rag_documents d ON d.id = c.document_id"
                " WHERE c.collection_id = %s AND c.id = ANY(%s)",
                (collection.id, [int(i) for i in ids]),
            ).fetchall()
        opened = self.sealer_for(collection).open
        return {
            int(r["id"]): ChunkRecord(
                id=int(r["id"]),
                document_id=int(r["document_id"]),
                index=int(r["idx"]),
                text=opened(r["text"]),
                page=r["page"],
                heading=opened(r["heading"]) if r["heading"] is not None else None,
                source=r["source"],
                title=opened(r["title"]),
                locator=r["locator"],
                metadata=r["metadata"],
            )
            for r in rows
        }


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
        hnsw_threshold=cfg.hnsw_threshold,
        hnsw_m=cfg.hnsw_m,
        ef_construction=cfg.hnsw_ef_construction,
        ef_search=cfg.hnsw_ef_search,
    )
