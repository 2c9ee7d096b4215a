"""The HNSW indexes of the pgvector store: one partial index per collection past
``rag.hnsw_threshold`` chunks, over ``embedding::vector(<dim>)`` (``rag_hnsw_<uid>``).

pgvector adds a chunk to a graph one at a time, about 5 ms each for 512-dimension vectors
on a 2-core machine, while building a graph costs about 0.15 ms a chunk. So an ingest run
(``bulk``) defers the build to its end, and one that adds more than ``_REBUILD_SHARE`` of
an indexed collection drops the index and builds it again at its end (searches meanwhile
are exact, hence correct). Builds are ``CREATE INDEX CONCURRENTLY``: other replicas keep
reading and writing; one cut short leaves an invalid index, which the next build redoes.
One replica builds a collection's index at a time (a session advisory lock): an index
being built is listed as invalid too, and must not be taken for one cut short.

A run that added many chunks also vacuums the tables it wrote: BM25 reads term postings
from the index alone only where the table's visibility map says the rows are visible.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from genaiops.errors import GenaiopsError
from genaiops.rag.stores.base import Collection
from genaiops.rag.stores.pgvector.pool import Pool

log = logging.getLogger("genaiops.rag")

_REBUILD_SHARE = 0.2
_REBUILD_MIN = 2000
# Runs adding at least this many chunks vacuum rag_terms and rag_chunks at their end.
_VACUUM_MIN = 1000
# A search of a large collection without a valid index starts a build in the background,
# checking at most this often.
_INDEX_CHECK_S = 60.0
# Graph builds get at least this much memory (the graph of 100,000 chunks fits).
_BUILD_MEMORY_KB = 512 * 1024


@dataclass
class _Bulk:
    """An ingest run in progress on one collection (runs may nest)."""

    base: int
    depth: int = 0
    added: int = 0
    dropped: bool = False


def index_name(collection: Collection) -> str:
    return f"rag_hnsw_{collection.uid}"


class HnswIndexes:
    def __init__(self, pool: Pool, *, threshold: int, m: int, ef_construction: int):
        self.pool = pool
        self.threshold = threshold
        self.m = m
        self.ef_construction = ef_construction
        self._guard = threading.Lock()
        self._building: set[str] = set()
        self._bulk: dict[int, _Bulk] = {}
        self._checked: dict[str, float] = {}

    @contextmanager
    def bulk(self, collection: Collection) -> Iterator[None]:
        with self._guard:
            state = self._bulk.setdefault(collection.id, _Bulk(base=collection.chunks))
            state.depth += 1
        try:
            yield
        finally:
            with self._guard:
                state.depth -= 1
                if state.depth == 0:
                    del self._bulk[collection.id]
            if state.depth == 0:
                self.build_if_large(collection)
                if state.added >= _VACUUM_MIN:
                    with self.pool.connection() as conn:
                        conn.execute("VACUUM (ANALYZE) rag_terms, rag_chunks")

    def after_write(self, collection: Collection, added: int) -> None:
        drop = False
        with self._guard:
            state = self._bulk.get(collection.id)
            if state is not None:
                state.added += added
                drop = (
                    not state.dropped
                    and state.base >= self.threshold
                    and state.added > max(_REBUILD_MIN, _REBUILD_SHARE * state.base)
                )
                state.dropped = state.dropped or drop
        if state is None:
            self.build_if_large(collection)
        elif drop:
            log.info(
                "collection %s: its HNSW index is dropped for this ingest and rebuilt at its end",
                collection.spec.name,
            )
            self.drop(collection)

    def check(self, collection: Collection) -> None:
        """From searches of a large collection: make sure its index exists, building it in
        the background if not."""
        now = time.monotonic()
        with self._guard:
            if collection.id in self._bulk:
                return
            if now - self._checked.get(collection.uid, -_INDEX_CHECK_S) < _INDEX_CHECK_S:
                return
            self._checked[collection.uid] = now
        threading.Thread(
            target=self._build_quietly, args=(collection,), name="pgvector-index", daemon=True
        ).start()

    def _build_quietly(self, collection: Collection) -> None:
        try:
            self.build_if_large(collection)
        except GenaiopsError as exc:  # the database is down: a later search tries again
            log.warning("HNSW index of collection %s not built: %s", collection.spec.name, exc)
            with self._guard:
                self._checked.pop(collection.uid, None)

    def build_if_large(self, collection: Collection) -> None:
        """Give a collection past the threshold its index, unless it has a valid one."""
        name = index_name(collection)
        with self._guard:
            if name in self._building:
                return
            self._building.add(name)
        try:
            with self.pool.connection() as conn:
                # One builder across replicas: an index being built concurrently is listed
                # as invalid, and another replica must not take it for one cut short.
                locked = conn.execute(
                    "SELECT pg_try_advisory_lock(hashtext(%s)) AS got", ("genaiops:" + name,)
                ).fetchone()
                if locked is None or not locked["got"]:
                    return
                try:
                    self._build_locked(conn, collection, name)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", ("genaiops:" + name,))
        finally:
            with self._guard:
                self._building.discard(name)

    def _build_locked(self, conn: Any, collection: Collection, name: str) -> None:
        """``build_if_large`` holding the build lock: an invalid index now is one whose
        build was cut short (its builder gone), redone."""
        row = conn.execute(
            "SELECT c.n_chunks, i.indisvalid FROM rag_collections c"
            " LEFT JOIN pg_class k ON k.relname = %s"
            " LEFT JOIN pg_index i ON i.indexrelid = k.oid WHERE c.id = %s",
            (name, collection.id),
        ).fetchone()
        if row is None or row["n_chunks"] < self.threshold or row["indisvalid"]:
            return
        if row["indisvalid"] is False:
            conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
        log.info(
            "building the HNSW index of collection %s (%d chunks)",
            collection.spec.name,
            row["n_chunks"],
        )
        memory = conn.execute(
            "SELECT setting::bigint AS kb FROM pg_settings WHERE name = 'maintenance_work_mem'"
        ).fetchone()
        if memory is not None and memory["kb"] < _BUILD_MEMORY_KB:
            conn.execute(f"SET maintenance_work_mem = '{_BUILD_MEMORY_KB}kB'")
        conn.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON rag_chunks'
            f" USING hnsw ((embedding::vector({int(collection.spec.dim)}))"
            f" vector_ip_ops) WITH (m = {int(self.m)},"
            f" ef_construction = {int(self.ef_construction)})"
            f" WHERE collection_id = {int(collection.id)}"
        )
        conn.execute("RESET maintenance_work_mem")
        conn.execute("ANALYZE rag_chunks")

    def drop(self, collection: Collection) -> None:
        with self.pool.connection() as conn:
            conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{index_name(collection)}"')

    def valid(self, collection: Collection) -> bool:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT i.indisvalid FROM pg_class k JOIN pg_index i ON i.indexrelid = k.oid"
                " WHERE k.relname = %s",
                (index_name(collection),),
            ).fetchone()
        return bool(row and row["indisvalid"])
