"""FAISS indexes derived from the vectors in the store, one per collection.

The store is the source of truth; an index is a cache of it, written next to the database
as ``<uid>-<version>.faiss``: the collection's uid (unique to this collection, never
reused by one created later under the same name or row id) and the collection version
the index was built from. The file name is the stamp, and a file appears whole (written
to a temporary file, then renamed), so a crash or two processes rebuilding at once can
never pair an index with the wrong version. A missing, unreadable or stale index (the
collection changed since) is rebuilt on the next search from one consistent read of the
store. Small collections use exact inner-product search; above ``hnsw_threshold`` chunks
an HNSW graph trades a little recall (measured in benchmarks/) for sub-millisecond queries.

A saved index newer than the store (the database was replaced by an older copy, a
restored backup, which numbers versions and chunks again from the copy's) is foreign: its
ids may name other chunks. A process's first change to a collection removes such files
before it commits (a restore happens while no process runs), and a search that meets one
removes it, so the index is rebuilt from the store.

A stale index (another process or replica changed the collection, or the saved file is
from before the last changes) is caught up rather than rebuilt when the difference is
small: one consistent read gives the collection's chunk ids and the vectors of those the
index lacks, ids the index holds that are gone are removed, and the rest stays. Chunk ids
are never reused, so ids are enough to tell what changed. A rebuild of 100,000 chunks
under HNSW takes about 30 s, during which the collection's searches wait; a catch-up of a
few documents takes milliseconds.

FAISS allows concurrent searches of an index but no search while it changes: each loaded
index has a readers-writer lock, searches share it and in-place changes take it alone.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger("genaiops.rag")

# One consistent read of the store: (collection version, chunk ids, their vectors).
Loader = Callable[[], tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float32]]]
# One consistent read of what an index holding ``known`` ids lacks: (collection version,
# every chunk id, the ids not in ``known``, their vectors).
Delta = Callable[
    [npt.NDArray[np.int64]],
    tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]],
]
# Past this share of the index changed, a rebuild is cheaper than a catch-up (and keeps
# an HNSW graph free of dead entries).
_CATCH_UP_SHARE = 0.2
_UID_RE = re.compile(r"[0-9a-f]{8,64}")


@dataclass
class _Entry:
    index: Any
    version: int
    kind: str
    # Ids removed since the build that HNSW cannot delete; filtered out of results.
    tombstones: set[int] = field(default_factory=set)


def _patch(
    entry: _Entry,
    removed: npt.NDArray[np.int64],
    added: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    threads: int = 1,
) -> None:
    """Remove and add vectors in place: an exact index deletes, HNSW (which cannot) keeps
    tombstones that searches filter out."""
    if len(removed):
        if entry.kind == "flat":
            entry.index.remove_ids(removed)
        else:
            entry.tombstones.update(int(i) for i in removed)
    if len(added):
        faiss = _faiss()
        faiss.omp_set_num_threads(threads)  # many new vectors: HNSW inserts in parallel
        try:
            entry.index.add_with_ids(vectors, added)
        finally:
            faiss.omp_set_num_threads(1)


class _ReadWriteLock:
    """Many readers or one writer; a waiting writer holds off new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


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


def _check_uid(uid: str) -> str:
    if not _UID_RE.fullmatch(uid):
        raise ValueError(f"invalid collection uid {uid!r}")
    return uid


class IndexCache:
    def __init__(
        self,
        directory: Path,
        *,
        hnsw_threshold: int = 20_000,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        max_bytes: int = 4096 * 2**20,
    ):
        self.directory = directory
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        # Loaded indexes, least recently searched first: past ``max_bytes`` in all, the
        # oldest are dropped from memory (a later search reads them from disk again).
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, _ReadWriteLock] = {}
        self._guard = threading.Lock()
        # Collections whose saved indexes a change of this process has checked against
        # the store (``before_change``).
        self._checked: set[str] = set()

    def _get(self, uid: str) -> _Entry | None:
        with self._guard:
            entry = self._entries.get(uid)
            if entry is not None:
                self._entries.move_to_end(uid)
            return entry

    def _pop(self, uid: str) -> None:
        with self._guard:
            self._entries.pop(uid, None)

    def _keep(self, uid: str, entry: _Entry) -> None:
        """Hold ``entry`` as the most recently used, dropping the least recently used
        others while the loaded indexes take more than ``max_bytes``."""
        with self._guard:
            self._entries[uid] = entry
            self._entries.move_to_end(uid)
            total = sum(self.nbytes(e) for e in self._entries.values())
            for other in list(self._entries):
                if total <= self.max_bytes or other == uid:
                    break
                total -= self.nbytes(self._entries.pop(other))

    def nbytes(self, entry: _Entry) -> int:
        """About what a loaded index takes in memory: its vectors, ids and graph links."""
        links = 2 * self.hnsw_m * 4 if entry.kind == "hnsw" else 0
        return int(entry.index.ntotal) * (int(entry.index.d) * 4 + 8 + links)

    def _lock(self, uid: str) -> _ReadWriteLock:
        with self._guard:
            return self._locks.setdefault(uid, _ReadWriteLock())

    def path(self, uid: str, version: int) -> Path:
        """Where the index of collection ``uid`` at ``version`` is (or would be) saved."""
        return self.directory / f"{_check_uid(uid)}-{version}.faiss"

    def _saved_versions(self, uid: str) -> dict[int, Path]:
        found: dict[int, Path] = {}
        for path in self.directory.glob(f"{_check_uid(uid)}-*.faiss"):
            version = path.stem.rpartition("-")[2]
            if version.isdigit():
                found[int(version)] = path
        return found

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

    def _read(self, path: Path, dim: int) -> _Entry | None:
        faiss = _faiss()
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            return None  # unreadable: rebuilt by the caller
        if index.d != dim:
            return None
        graph = faiss.downcast_index(index.index)
        kind = "hnsw" if isinstance(graph, faiss.IndexHNSW) else "flat"
        version = int(path.stem.rpartition("-")[2])
        return _Entry(index, version, kind)

    def _save(self, uid: str, version: int, index: Any) -> None:
        faiss = _faiss()
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(uid, version)
        handle, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{uid}-", suffix=".tmp")
        os.close(handle)
        try:
            faiss.write_index(index, tmp)
            os.replace(tmp, final)
        finally:
            Path(tmp).unlink(missing_ok=True)
        for older, path in self._saved_versions(uid).items():
            if older < version:
                path.unlink(missing_ok=True)

    def _load_or_build(
        self,
        uid: str,
        version: int,
        dim: int,
        load: Loader,
        stale: _Entry | None = None,
        delta: Delta | None = None,
        current: Callable[[], int] | None = None,
    ) -> _Entry:
        saved = self._saved_versions(uid)
        newest = max((v for v in saved if v >= version), default=None)
        if newest is not None and newest > version and current is not None:
            # Another process may have moved the collection on since ``version`` was read;
            # an index newer than the store is from a database since replaced.
            now = current()
            if newest > now:
                self.forget_newer(uid, now)
                saved = {v: path for v, path in saved.items() if v <= now}
                newest = max((v for v in saved if v >= version), default=None)
        if newest is not None:
            entry = self._read(saved[newest], dim)
            if entry is not None:
                return entry
        if delta is not None:
            if stale is None and saved:
                stale = self._read(saved[max(saved)], dim)
            if stale is not None and self._catch_up(uid, stale, delta):
                return stale
        built_version, ids, vectors = load()
        index, kind = self.build(dim, ids, vectors)
        self._save(uid, built_version, index)
        log.info(
            "built %s index for collection %s (%d vectors)",
            kind,
            uid,
            len(ids),
            extra={"collection_uid": uid},
        )
        return _Entry(index, built_version, kind)

    def _catch_up(self, uid: str, entry: _Entry, delta: Delta) -> bool:
        """Bring ``entry`` to the store's current version in place; False when a rebuild
        is the better way (too much changed, or the collection outgrew exact search)."""
        faiss = _faiss()
        held = faiss.vector_to_array(entry.index.id_map).astype(np.int64)
        if entry.tombstones:
            held = held[~np.isin(held, np.fromiter(entry.tombstones, dtype=np.int64))]
        version, current, added, vectors = delta(held)
        removed = held[~np.isin(held, current)]
        changed = len(added) + len(removed) + len(entry.tombstones)
        if changed > _CATCH_UP_SHARE * max(len(current), 1):
            return False
        if entry.kind == "flat" and len(current) > self.hnsw_threshold:
            return False
        _patch(entry, removed, added, vectors, threads=os.cpu_count() or 1)
        log.info(
            "caught up %s index of collection %s from version %d to %d (+%d -%d vectors)",
            entry.kind,
            uid,
            entry.version,
            version,
            len(added),
            len(removed),
            extra={"collection_uid": uid},
        )
        entry.version = version
        return True

    def search(
        self,
        uid: str,
        version: int,
        dim: int,
        load: Loader,
        vector: npt.NDArray[np.float32],
        k: int,
        allowed: npt.NDArray[np.int64] | None = None,
        delta: Delta | None = None,
        current: Callable[[], int] | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest chunks of collection ``uid`` as of ``version`` or later, only
        among the ``allowed`` ids when given. With ``delta``, a stale index is caught up
        instead of rebuilt when little changed. With ``current`` (the collection's version
        now), a saved index newer than the store is recognised as foreign and removed."""
        lock = self._lock(uid)
        with lock.read():
            entry = self._get(uid)
            if entry is not None and entry.version >= version:
                return self._search(entry, vector, k, allowed)
        with lock.write():
            entry = self._get(uid)
            if entry is None or entry.version < version:
                entry = self._load_or_build(uid, version, dim, load, entry, delta, current)
                self._keep(uid, entry)
            return self._search(entry, vector, k, allowed)

    def _search(
        self,
        entry: _Entry,
        vector: npt.NDArray[np.float32],
        k: int,
        allowed: npt.NDArray[np.int64] | None,
    ) -> list[tuple[int, float]]:
        if entry.index.ntotal == 0 or (allowed is not None and not len(allowed)):
            return []
        faiss = _faiss()
        dead = entry.tombstones
        fetch = k + len(dead) if allowed is None else k
        selector = None if allowed is None else faiss.IDSelectorBatch(allowed)
        params: Any
        if entry.kind == "hnsw":
            # Widen the graph search as the allowed share of the index shrinks, so that
            # about as many allowed candidates are met as without a selector.
            wanted = fetch if allowed is None else fetch * entry.index.ntotal // len(allowed)
            ef = max(self.ef_search, min(wanted, entry.index.ntotal))
            params = faiss.SearchParametersHNSW(efSearch=ef)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        scores, ids = entry.index.search(
            vector.reshape(1, -1), min(fetch, entry.index.ntotal), params=params
        )
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        return [h for h in hits if h[0] not in dead][:k]

    def apply(
        self,
        uid: str,
        old_version: int,
        new_version: int,
        removed: npt.NDArray[np.int64],
        added: npt.NDArray[np.int64],
        vectors: npt.NDArray[np.float32],
    ) -> None:
        """Bring a loaded index from ``old_version`` to ``new_version`` in place, so a
        change to a large collection does not cost a full rebuild at the next search. An
        index loaded at ``new_version`` or later already holds the change; one at any other
        version is dropped and rebuilt when next used."""
        with self._lock(uid).write():
            entry = self._get(uid)
            if entry is None or entry.version >= new_version:
                return
            if entry.version != old_version:
                self._pop(uid)
                return
            _patch(entry, removed, added, vectors)
            entry.version = new_version
            # Too many dead entries make HNSW searches wider and recall worse: rebuild.
            if len(entry.tombstones) > 0.2 * max(entry.index.ntotal, 1):
                self._pop(uid)

    def before_change(self, uid: str, version: int) -> None:
        """Called by a change to collection ``uid`` (at ``version`` in the store) before it
        commits: the first one in this process removes indexes newer than the store
        (``forget_newer``). A restore replaces the database only while no process uses
        it, so later changes of this process need not look again."""
        with self._guard:
            if uid in self._checked:
                return
        self.forget_newer(uid, version)
        with self._guard:
            self._checked.add(uid)

    def forget_newer(self, uid: str, version: int) -> int:
        """Remove the saved and loaded indexes of collection ``uid`` built from a version
        past ``version``, the store's own; how many files went. The store's versions only
        grow, so such an index comes from a database since replaced by an older copy (a
        restored backup) whose version and chunk numbering start again from the copy's:
        the index's ids would name other chunks. Called before a change commits
        (``before_change``) and by a search that finds such a file; it waits for no lock,
        so it is safe inside the store's write transaction."""
        with self._guard:
            entry = self._entries.get(uid)
            if entry is not None and entry.version > version:
                del self._entries[uid]
        removed = 0
        for newer, path in self._saved_versions(uid).items():
            if newer > version:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.warning(
                "removed %d index file(s) of collection %s newer than its version %d in the"
                " store (a restored database?); the index is rebuilt from the store",
                removed,
                uid,
                version,
                extra={"collection_uid": uid},
            )
        return removed

    def kind(self, uid: str) -> str | None:
        with self._guard:
            entry = self._entries.get(uid)
        return entry.kind if entry is not None else None

    def loaded(self) -> list[str]:
        """The collections whose indexes are in memory, least recently searched first."""
        with self._guard:
            return list(self._entries)

    def sweep(self, live: set[str], stale_tmp_s: float = 3600.0) -> int:
        """Delete saved indexes of collections not in ``live`` (one deleted while another
        process was saving its index) and temporary files a killed save left behind;
        how many files went."""
        removed = 0
        if not self.directory.is_dir():
            return 0
        cutoff = time.time() - stale_tmp_s
        for path in self.directory.iterdir():
            uid, _, version = path.stem.rpartition("-")
            orphan = path.suffix == ".faiss" and version.isdigit() and uid not in live
            leftover = path.suffix == ".tmp" and path.name.startswith(".")
            try:
                if orphan or (leftover and path.stat().st_mtime < cutoff):
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def drop(self, uid: str) -> None:
        with self._lock(uid).write():
            self._pop(uid)
            for path in self._saved_versions(uid).values():
                path.unlink(missing_ok=True)
        with self._guard:
            self._locks.pop(uid, None)
