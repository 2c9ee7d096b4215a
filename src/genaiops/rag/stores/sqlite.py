"""The embedded store: one SQLite file (``<data_dir>/rag/rag.db``) holds collections,
documents, chunks with their vectors, and one FTS5 table per collection for BM25; FAISS
indexes are derived from it (stores/faiss_index.py).

Every change to a document (replace or delete) is one ``BEGIN IMMEDIATE`` transaction that
also bumps the collection's version, so a crash or Ctrl-C leaves each document either
wholly old or wholly new, and derived indexes notice they are stale. Connections are
per thread (WAL mode: readers never wait for the writer).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genaiops.errors import NotFound
from genaiops.rag import lexical
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
from genaiops.rag.stores.faiss_index import IndexCache
from genaiops.rag.stores.schema import SCHEMA
from genaiops.rag.stores.sqlite_filters import filter_sql
from genaiops.storage.db import private_file

if TYPE_CHECKING:
    from genaiops.config import Settings

# A filtered dense search allowing at most this many chunks reads their vectors and
# compares them all (exact, a few milliseconds) instead of searching the index.
_EXACT_FILTERED = 4096


def _now_us() -> int:
    return time.time_ns() // 1000


class SQLiteStore:
    def __init__(self, directory: Path, sealer: Sealer, indexes: IndexCache):
        self.directory = directory
        self.path = directory / "rag.db"
        self.sealer = sealer
        self.indexes = indexes
        self._local = threading.local()
        # Each thread's connection, with its thread: a server's worker threads come and go
        # (anyio retires idle ones), and a finished thread's connection is closed.
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._guard = threading.Lock()
        self._plain = Sealer(None)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        private_file(Path(self.path))
        self._conn().executescript(SCHEMA)
        self._migrate()
        live = {r["uid"] for r in self._conn().execute("SELECT uid FROM collections")}
        self.indexes.sweep(live)

    # -- connections -----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._guard:
                kept = [(threading.current_thread(), conn)]
                for thread, other in self._connections:
                    if thread.is_alive():
                        kept.append((thread, other))
                    else:
                        other.close()
                self._connections = kept
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        """Bring a store written by an earlier release up to date: collections get their
        uid (index files named by row id are dropped; they are rebuilt on demand) and
        keyed content hashes (``_key_hashes``)."""
        with self._write() as conn:
            columns = {r["name"] for r in conn.execute("PRAGMA table_info(collections)")}
            if "uid" not in columns:
                conn.execute("ALTER TABLE collections ADD COLUMN uid TEXT")
            if "hashes_keyed" not in columns:
                conn.execute(
                    "ALTER TABLE collections ADD COLUMN hashes_keyed INTEGER NOT NULL DEFAULT 0"
                )
            missing = conn.execute("SELECT id FROM collections WHERE uid IS NULL").fetchall()
            for row in missing:
                conn.execute(
                    "UPDATE collections SET uid = ? WHERE id = ?", (uuid.uuid4().hex, row["id"])
                )
            conn.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS ix_collections_uid ON collections (uid)"
            )
            if self.sealer.enabled:
                self._key_hashes(conn)
        if missing:
            for path in (self.directory / "indexes").glob("*.*"):
                if path.stem.isdigit() and path.suffix in (".faiss", ".json"):
                    path.unlink(missing_ok=True)

    def _key_hashes(self, conn: sqlite3.Connection) -> None:
        """Encrypted collections written before content hashes were keyed hold bare
        SHA-256 digests of their texts: replace them with keyed ones (``Sealer.
        fingerprint``), once per collection, when the collection's key is configured."""
        todo = conn.execute(
            "SELECT id FROM collections WHERE key_check = ? AND hashes_keyed = 0",
            (self.sealer.check_value(),),
        ).fetchall()
        if todo:
            conn.create_function("genaiops_fingerprint", 1, self.sealer.fingerprint)
        for row in todo:
            for table, column in (("documents", "content_hash"), ("chunks", "text_hash")):
                conn.execute(
                    f"UPDATE {table} SET {column} = genaiops_fingerprint({column})"
                    f" WHERE collection_id = ? AND {column} NOT LIKE '{FINGERPRINT}%'",
                    (row["id"],),
                )
            conn.execute("UPDATE collections SET hashes_keyed = 1 WHERE id = ?", (row["id"],))

    def sealer_for(self, collection: Collection) -> Sealer:
        """The sealer of a collection: an encrypted collection (created while a key was
        configured) is read and written with the key, a plaintext one stays plaintext even
        after a key is configured, so one collection never mixes the two."""
        return self.sealer if collection.encrypted else self._plain

    def close(self) -> None:
        with self._guard:
            for _, conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- collections -----------------------------------------------------------------------

    _SELECT_COLLECTION = """
        SELECT c.*,
               (SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id) AS n_documents,
               (SELECT COALESCE(SUM(d.chunks), 0) FROM documents d
                 WHERE d.collection_id = c.id) AS n_chunks
        FROM collections c
    """

    def create_collection(self, spec: CollectionSpec) -> Collection:
        with self._write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM collections WHERE tenant = ? AND name = ?", (spec.tenant, spec.name)
            ).fetchone()
            if exists:
                raise records.exists(spec.name)
            cursor = conn.execute(
                "INSERT INTO collections (tenant, name, embedder, dim, chunk_tokens,"
                " chunk_overlap, language, description, key_check, created_us, uid,"
                " hashes_keyed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (
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
                    uuid.uuid4().hex,
                ),
            )
            collection_id = int(cursor.lastrowid or 0)
            conn.execute(
                f"CREATE VIRTUAL TABLE fts_{collection_id} USING fts5(body, tokenize='unicode61')"
            )
        return self.get_collection(spec.tenant, spec.name)

    def get_collection(self, tenant: str, name: str, readable: bool = True) -> Collection:
        """The collection; with ``readable`` (default) refused when it is encrypted with a
        key this store does not hold."""
        row = (
            self._conn()
            .execute(self._SELECT_COLLECTION + " WHERE c.tenant = ? AND c.name = ?", (tenant, name))
            .fetchone()
        )
        if row is None:
            raise records.not_found(name)
        return records.collection(row, self.sealer) if readable else records.listed_collection(row)

    def list_collections(self, tenant: str | None) -> list[Collection]:
        query = self._SELECT_COLLECTION
        args: tuple[Any, ...] = ()
        if tenant is not None:
            query += " WHERE c.tenant = ?"
            args = (tenant,)
        rows = self._conn().execute(query + " ORDER BY c.tenant, c.name", args).fetchall()
        return [records.listed_collection(r) for r in rows]

    def delete_collection(self, tenant: str, name: str) -> None:
        # Deleting reads no text: a collection whose key was lost can still be removed.
        collection = self.get_collection(tenant, name, readable=False)
        with self._write() as conn:
            conn.execute("DELETE FROM chunks WHERE collection_id = ?", (collection.id,))
            conn.execute("DELETE FROM documents WHERE collection_id = ?", (collection.id,))
            conn.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
            conn.execute(f"DROP TABLE IF EXISTS fts_{collection.id}")
        self.indexes.drop(collection.uid)

    def current_version(self, collection: Collection) -> int:
        return self._version(self._conn(), collection)

    # -- documents -------------------------------------------------------------------------

    def document_hash(self, collection: Collection, key: str) -> str | None:
        row = (
            self._conn()
            .execute(
                "SELECT content_hash FROM documents WHERE collection_id = ? AND key = ?",
                (collection.id, key),
            )
            .fetchone()
        )
        return str(row["content_hash"]) if row else None

    def known_vectors(
        self, collection: Collection, text_hashes: Sequence[str]
    ) -> dict[str, Vectors]:
        found: dict[str, Vectors] = {}
        unique = list(dict.fromkeys(text_hashes))
        for start in range(0, len(unique), 500):
            batch = unique[start : start + 500]
            marks = ",".join("?" * len(batch))
            rows = self._conn().execute(
                f"SELECT text_hash, embedding FROM chunks WHERE collection_id = ?"
                f" AND text_hash IN ({marks})",
                (collection.id, *batch),
            )
            for row in rows:
                found[row["text_hash"]] = np.frombuffer(row["embedding"], dtype=np.float32)
        return found

    def _delete_document_rows(self, conn: sqlite3.Connection, cid: int, document_id: int) -> None:
        conn.execute(
            f"DELETE FROM fts_{cid} WHERE rowid IN (SELECT id FROM chunks WHERE document_id = ?)",
            (document_id,),
        )
        conn.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
        conn.execute("DELETE FROM documents WHERE id = ?", (document_id,))

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
        stamp = _now_us()
        added: list[int] = []
        removed: list[int] = []
        with self._write() as conn:
            version = self._version(conn, collection)
            self.indexes.before_change(collection.uid, version)
            old = conn.execute(
                "SELECT id FROM documents WHERE collection_id = ? AND key = ?",
                (cid, document.key),
            ).fetchone()
            if old is not None:
                removed = self._chunk_ids(conn, old["id"])
                self._delete_document_rows(conn, cid, old["id"])
            # A changed document keeps its id (its chunks get new ones, never reused).
            cursor = conn.execute(
                "INSERT INTO documents (id, collection_id, key, source, title, kind, locator,"
                " content_hash, metadata, chunks, updated_us) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
                    stamp,
                ),
            )
            document_id = int(cursor.lastrowid or 0)
            for chunk, text_hash, vector in zip(chunks, text_hashes, vectors, strict=True):
                cursor = conn.execute(
                    "INSERT INTO chunks (collection_id, document_id, idx, text, heading, page,"
                    " tokens, text_hash, embedding) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        cid,
                        document_id,
                        chunk.index,
                        seal(chunk.text),
                        seal(chunk.heading) if chunk.heading is not None else None,
                        chunk.page,
                        chunk.tokens,
                        text_hash,
                        np.asarray(vector, dtype=np.float32).tobytes(),
                    ),
                )
                indexed = f"{document.title} {chunk.heading or ''} {chunk.text}"
                conn.execute(
                    f"INSERT INTO fts_{cid} (rowid, body) VALUES (?, ?)",
                    (cursor.lastrowid, lexical.index_text(indexed, term)),
                )
                added.append(int(cursor.lastrowid or 0))
            conn.execute("UPDATE collections SET version = version + 1 WHERE id = ?", (cid,))
            # Read back in the same transaction: once it commits, another process may
            # replace the document at once (a second ingest of the same folder).
            row = conn.execute("SELECT * FROM documents WHERE id = ?", (document_id,)).fetchone()
        self.indexes.apply(
            collection.uid,
            version,
            version + 1,
            np.asarray(removed, dtype=np.int64),
            np.asarray(added, dtype=np.int64),
            np.ascontiguousarray(vectors, dtype=np.float32),
        )
        return self._document_record(collection, row)

    @staticmethod
    def _version(conn: sqlite3.Connection, collection: Collection) -> int:
        """The collection's version, read in the caller's transaction. SQLite gives the row
        id of the newest collection, once deleted, to the next one created (another
        tenant's, maybe): the uid tells a work holding the old one that it is gone."""
        row = conn.execute(
            "SELECT version, uid FROM collections WHERE id = ?", (collection.id,)
        ).fetchone()
        if row is None or row["uid"] != collection.uid:
            raise NotFound("The collection was deleted.", code="collection_not_found")
        return int(row["version"])

    @staticmethod
    def _chunk_ids(conn: sqlite3.Connection, document_id: int) -> list[int]:
        rows = conn.execute("SELECT id FROM chunks WHERE document_id = ?", (document_id,))
        return [int(r["id"]) for r in rows]

    def _document(self, collection: Collection, document_id: int) -> DocumentRecord:
        row = (
            self._conn()
            .execute(
                "SELECT * FROM documents WHERE id = ? AND collection_id = ?",
                (document_id, collection.id),
            )
            .fetchone()
        )
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
        with self._write() as conn:
            version = self._version(conn, collection)
            self.indexes.before_change(collection.uid, version)
            removed = self._chunk_ids(conn, document_id)
            self._delete_document_rows(conn, collection.id, document_id)
            conn.execute(
                "UPDATE collections SET version = version + 1 WHERE id = ?", (collection.id,)
            )
        empty = np.zeros(0, dtype=np.int64)
        self.indexes.apply(
            collection.uid,
            version,
            version + 1,
            np.asarray(removed, dtype=np.int64),
            empty,
            np.zeros((0, collection.spec.dim), dtype=np.float32),
        )
        return record

    def bulk(self, collection: Collection) -> AbstractContextManager[None]:
        # The FAISS index follows changes in place already (stores/faiss_index.py).
        return nullcontext()

    def list_documents(
        self, collection: Collection, offset: int = 0, limit: int = 100
    ) -> list[DocumentRecord]:
        rows = self._conn().execute(
            "SELECT * FROM documents WHERE collection_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (collection.id, limit, offset),
        )
        return [self._document_record(collection, r) for r in rows]

    def document_chunks(
        self, collection: Collection, document_id: int
    ) -> tuple[list[Chunk], list[str], Vectors]:
        rows = (
            self._conn()
            .execute(
                "SELECT c.idx, c.text, c.heading, c.page, c.tokens, c.text_hash, c.embedding"
                " FROM chunks c JOIN documents d ON d.id = c.document_id"
                " WHERE d.id = ? AND d.collection_id = ? ORDER BY c.idx",
                (document_id, collection.id),
            )
            .fetchall()
        )
        sealer = self.sealer_for(collection)
        chunks = [records.stored_chunk(r, sealer) for r in rows]
        vectors = np.frombuffer(b"".join(r["embedding"] for r in rows), dtype=np.float32)
        return (
            chunks,
            [r["text_hash"] for r in rows],
            vectors.reshape(len(rows), collection.spec.dim),
        )

    # -- search ----------------------------------------------------------------------------

    def lexical(
        self, collection: Collection, query: str, k: int, filters: Filters | None
    ) -> list[tuple[int, float]]:
        match = lexical.match_query(query, self.sealer_for(collection).term)
        if match is None:
            return []
        where, args = filter_sql(filters)
        table = f"fts_{collection.id}"
        joins = " JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.document_id"
        rows = self._conn().execute(
            f"SELECT f.rowid AS id, bm25({table}) AS score FROM {table} f"
            f"{joins if where else ''} WHERE {table} MATCH ?{where} ORDER BY score LIMIT ?",
            (match, *args, k),
        )
        # FTS5's bm25() is negative (more negative = better); report the usual positive score.
        return [(int(r["id"]), -float(r["score"])) for r in rows]

    def _snapshot(self, collection: Collection) -> tuple[int, Any, Any]:
        version, _, ids, vectors = self._delta(collection, np.zeros(0, dtype=np.int64))
        return version, ids, vectors

    def _delta(self, collection: Collection, known: Any) -> tuple[int, Any, Any, Any]:
        """For an index holding ``known`` chunk ids: the collection's version, all its
        chunk ids, the ids missing from ``known`` and their vectors, read in one
        transaction (one snapshot of the WAL), so the index is labelled with the version
        its vectors are from. With nothing known, what a new index is built from."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            version = self._version(conn, collection)
            rows = conn.execute(
                "SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", (collection.id,)
            )
            current = np.fromiter((r["id"] for r in rows), dtype=np.int64)
            added, vectors = self._vectors(current[~np.isin(current, known)], collection.spec.dim)
        finally:
            conn.execute("COMMIT")
        return version, current, added, vectors

    def _vectors(self, ids: Any, dim: int) -> tuple[Any, Any]:
        """(the ids found, their vectors) for chunk ``ids``, read in batches."""
        rows: list[sqlite3.Row] = []
        for start in range(0, len(ids), 500):
            batch = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(batch))
            rows += self._conn().execute(
                f"SELECT id, embedding FROM chunks WHERE id IN ({marks})", batch
            )
        found = np.fromiter((r["id"] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r["embedding"] for r in rows), dtype=np.float32)
        return found, vectors.reshape(len(rows), dim)

    def _exact(
        self, collection: Collection, ids: Any, query: Vectors, k: int
    ) -> list[tuple[int, float]]:
        """Exact inner-product search over the stored vectors of ``ids``."""
        found, vectors = self._vectors(ids, collection.spec.dim)
        if not len(found):
            return []
        scores = vectors @ query
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(found[i]), float(scores[i])) for i in best]

    def dense(
        self, collection: Collection, vector: Vectors, k: int, filters: Filters | None
    ) -> list[tuple[int, float]]:
        query = np.asarray(vector, dtype=np.float32)
        allowed = None
        if filters:
            # Search among the chunks the filters allow (not a post-filter of the nearest
            # ones, which misses matching chunks that are not among them): exactly, from
            # the stored vectors, when they are few; else through the index with a selector.
            where, args = filter_sql(filters)
            rows = self._conn().execute(
                "SELECT c.id FROM documents d JOIN chunks c ON c.document_id = d.id"
                f" WHERE d.collection_id = ?{where}",
                (collection.id, *args),
            )
            allowed = np.fromiter((r["id"] for r in rows), dtype=np.int64)
            if len(allowed) <= _EXACT_FILTERED:
                return self._exact(collection, allowed, query, k)
        return self.indexes.search(
            collection.uid,
            self.current_version(collection),
            collection.spec.dim,
            lambda: self._snapshot(collection),
            query,
            k,
            allowed,
            delta=lambda known: self._delta(collection, known),
            current=lambda: self.current_version(collection),
        )

    def chunks(self, collection: Collection, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        if not ids:
            return {}
        rows = self._conn().execute(
            "SELECT c.id, c.document_id, c.idx, c.text, c.page, c.heading, d.source, d.title,"
            " d.locator, d.metadata FROM chunks c JOIN documents d ON d.id = c.document_id"
            # "+c.collection_id": keep SQLite from choosing the (collection_id, text_hash)
            # index, which scans the collection, over primary-key lookups of the ids.
            f" WHERE +c.collection_id = ? AND c.id IN ({','.join('?' * len(ids))})",
            (collection.id, *ids),
        )
        sealer = self.sealer_for(collection)
        return {int(r["id"]): records.chunk(r, sealer) for r in rows}


def from_settings(settings: Settings) -> SQLiteStore:
    cfg = settings.rag
    directory = settings.rag_dir()
    indexes = IndexCache(
        directory / "indexes",
        hnsw_threshold=cfg.hnsw_threshold,
        hnsw_m=cfg.hnsw_m,
        ef_construction=cfg.hnsw_ef_construction,
        ef_search=cfg.hnsw_ef_search,
        max_bytes=cfg.index_memory_mb * 2**20,
    )
    return SQLiteStore(directory, Sealer.from_env(cfg.encryption_key_env), indexes)
