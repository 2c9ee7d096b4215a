"""FAISS indexes derived from the vectors in the store, one per collection.

The store is the source of truth; an index is a cache of it, written next to the database
as ``<id>.faiss`` with a ``<id>.json`` stamp holding the collection version it was built
from. A missing, unreadable or stale index (the collection changed since) is rebuilt on the
next search, so a crash can never leave search and store disagreeing. Small collections use
exact inner-product search; above ``hnsw_threshold`` chunks an HNSW graph trades a little
recall (measured in benchmarks/) for sub-millisecond queries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger("genaiops.rag")

Loader = Callable[[], tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]


@dataclass
class _Entry:
    index: Any
    version: int
    kind: str
    # Ids removed since the build that HNSW cannot delete; filtered out of results.
    tombstones: set[int] = field(default_factory=set)


_THREADS_SET = False


def _faiss() -> Any:
    """FAISS, with one OpenMP thread for searches: a single query gains nothing from more,
    and on a small machine FAISS's spinning threads collide with the embedder's (measured:
    10k-chunk hybrid p95 from 32 ms to 5 ms with one thread)."""
    global _THREADS_SET
    import faiss

    if not _THREADS_SET:
        faiss.omp_set_num_threads(1)
        _THREADS_SET = True
    return faiss


class IndexCache:
    def __init__(
        self,
        directory: Path,
        *,
        hnsw_threshold: int = 20_000,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
    ):
        self.directory = directory
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self._entries: dict[int, _Entry] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, collection_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(collection_id, threading.Lock())

    def _paths(self, collection_id: int) -> tuple[Path, Path]:
        return (
            self.directory / f"{collection_id}.faiss",
            self.directory / f"{collection_id}.json",
        )

    def build(self, dim: int, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> Any:
        faiss = _faiss()

        kind = "hnsw" if len(ids) > self.hnsw_threshold else "flat"
        inner: Any
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
        else:
            inner = faiss.IndexFlatIP(dim)
        index = faiss.IndexIDMap2(inner)
        if len(ids):
            # Building is the one place where FAISS's threads pay off (HNSW inserts).
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            try:
                index.add_with_ids(vectors, ids)
            finally:
                faiss.omp_set_num_threads(1)
        return index, kind

    def _load_or_build(self, collection_id: int, version: int, dim: int, load: Loader) -> _Entry:
        faiss = _faiss()

        index_path, stamp_path = self._paths(collection_id)
        try:
            stamp = json.loads(stamp_path.read_text())
            if stamp.get("version") == version and stamp.get("dim") == dim:
                return _Entry(faiss.read_index(str(index_path)), version, stamp["kind"])
        except (OSError, ValueError, RuntimeError):
            pass  # missing or unreadable: rebuild below
        ids, vectors = load()
        index, kind = self.build(dim, ids, vectors)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_suffix(".faiss.tmp")
        faiss.write_index(index, str(tmp))
        os.replace(tmp, index_path)
        stamp_path.write_text(json.dumps({"version": version, "dim": dim, "kind": kind}))
        log.info(
            "built %s index for collection %d (%d vectors)",
            kind,
            collection_id,
            len(ids),
            extra={"collection_id": collection_id},
        )
        return _Entry(index, version, kind)

    def search(
        self,
        collection_id: int,
        version: int,
        dim: int,
        load: Loader,
        vector: npt.NDArray[np.float32],
        k: int,
    ) -> list[tuple[int, float]]:
        entry = self._entries.get(collection_id)
        if entry is None or entry.version != version:
            with self._lock(collection_id):
                entry = self._entries.get(collection_id)
                if entry is None or entry.version != version:
                    entry = self._load_or_build(collection_id, version, dim, load)
                    self._entries[collection_id] = entry
        if entry.index.ntotal == 0:
            return []
        fetch = k + len(entry.tombstones)
        if entry.kind == "hnsw":
            faiss = _faiss()
            graph: Any = faiss.downcast_index(entry.index.index)
            graph.hnsw.efSearch = max(self.ef_search, fetch)
        scores, ids = entry.index.search(vector.reshape(1, -1), min(fetch, entry.index.ntotal))
        dead = entry.tombstones
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        return [h for h in hits if h[0] not in dead][:k]

    def apply(
        self,
        collection_id: int,
        old_version: int,
        new_version: int,
        removed: npt.NDArray[np.int64],
        added: npt.NDArray[np.int64],
        vectors: npt.NDArray[np.float32],
    ) -> None:
        """Bring a loaded index from ``old_version`` to ``new_version`` in place, so a
        change to a large collection does not cost a full rebuild at the next search. An
        index at any other version is dropped and rebuilt when next used."""
        with self._lock(collection_id):
            entry = self._entries.get(collection_id)
            if entry is None:
                return
            if entry.version != old_version:
                del self._entries[collection_id]
                return
            if len(removed):
                if entry.kind == "flat":
                    entry.index.remove_ids(removed)
                else:
                    entry.tombstones.update(int(i) for i in removed)
            if len(added):
                entry.index.add_with_ids(vectors, added)
            entry.version = new_version
            # Too many dead entries make HNSW searches wider and recall worse: rebuild.
            if len(entry.tombstones) > 0.2 * max(entry.index.ntotal, 1):
                del self._entries[collection_id]

    def kind(self, collection_id: int) -> str | None:
        entry = self._entries.get(collection_id)
        return entry.kind if entry is not None else None

    def drop(self, collection_id: int) -> None:
        self._entries.pop(collection_id, None)
        for path in self._paths(collection_id):
            path.unlink(missing_ok=True)
