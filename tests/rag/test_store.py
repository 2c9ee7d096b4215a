"""The embedded store (SQLite + FAISS) on its own, with synthetic unit vectors: concurrent
searches and changes, indexes shared between processes, and filtered dense search."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genaiops.config import load_settings
from genaiops.rag.documents import Chunk, LoadedDocument, Section
from genaiops.rag.stores import sqlite as sqlite_store
from genaiops.rag.stores.base import Collection, CollectionSpec
from genaiops.rag.stores.faiss_index import IndexCache
from genaiops.rag.stores.sqlite import SQLiteStore, from_settings

TENANT = "acme"
DIM = 32


def open_store(data: Path, **rag: Any) -> SQLiteStore:
    overrides: dict[str, Any] = {"rag": rag} if rag else {}
    return from_settings(load_settings(data_dir=data, **overrides))


def unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    normed: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normed


def put(
    store: SQLiteStore,
    collection: Collection,
    key: str,
    vectors: np.ndarray,
    metadata: dict[str, Any] | None = None,
) -> list[int]:
    """Store one document with one chunk per vector; returns the chunk ids in order."""
    texts = [f"{key} chunk {i}" for i in range(len(vectors))]
    document = LoadedDocument(
        source=key,
        title=key,
        sections=[Section(t) for t in texts],
        kind="txt",
        content_hash=hashlib.sha256(vectors.tobytes()).hexdigest(),
        metadata=metadata or {},
    )
    chunks = [Chunk(text=t, index=i, tokens=3) for i, t in enumerate(texts)]
    hashes = [hashlib.sha256(v.tobytes()).hexdigest() for v in vectors]
    store.replace_document(collection, document, chunks, hashes, vectors)
    rows = store._conn().execute(
        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id"
        " WHERE d.collection_id = ? AND d.key = ? ORDER BY c.idx",
        (collection.id, key),
    )
    return [int(r["id"]) for r in rows]


def spec(name: str) -> CollectionSpec:
    return CollectionSpec(
        tenant=TENANT, name=name, embedder="test", dim=DIM, chunk_tokens=64, chunk_overlap=0
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = open_store(tmp_path / "data")
    yield opened
    opened.close()


@pytest.mark.parametrize("threshold", [2, 100_000], ids=["hnsw", "flat"])
def test_searches_while_the_index_changes(tmp_path: Path, threshold: int) -> None:
    """Searches in several threads while another thread changes the loaded index in place,
    over and over: each change removes a block of vectors from the front of the index and
    adds them back under new ids (as replacing a document does), so every search must find
    its own vector first."""
    # HNSW cannot delete: its removed vectors are tombstones until the index is rebuilt
    # (when they pass a fifth of it), so it gets a smaller, cheaper graph.
    rows, block = (12_000, 400) if threshold > 12_000 else (3_000, 50)
    vectors = unit(rows, seed=1)
    ids = np.arange(1, rows + 1, dtype=np.int64)  # vector i is stored under ids[i]
    cache = IndexCache(tmp_path / "indexes", hnsw_threshold=threshold, hnsw_m=8, ef_construction=40)
    uid, state = uuid.uuid4().hex, {"version": 0}
    guard = threading.Lock()

    def load() -> tuple[int, Any, Any]:
        with guard:
            return state["version"], ids.copy(), vectors

    cache.search(uid, 0, DIM, load, vectors[0], 5)
    stop = threading.Event()
    failures: list[str] = []

    def change() -> None:
        n = 0
        while not stop.is_set():
            moved = slice((n % (rows // block)) * block, (n % (rows // block) + 1) * block)
            with guard:
                old, new = ids[moved].copy(), ids[moved] + rows
                version = state["version"]
                ids[moved] = new
                cache.apply(uid, version, version + 1, old, new, vectors[moved])
                state["version"] = version + 1
            n += 1
            stop.wait(0.001)  # let searches run between changes

    def search(offset: int) -> None:
        # At least 600 searches each, and on until the index has changed more than ten
        # times under them (a loaded machine may starve the writer at first).
        deadline = time.monotonic() + 120
        n = 0
        try:
            while n < 600 or (state["version"] <= 10 and time.monotonic() < deadline):
                n += 1
                i = (offset * 997 + n * 31) % rows
                hits = cache.search(uid, state["version"], DIM, load, vectors[i], 5)
                # Any id vector i was ever stored under is (id - 1) % rows == i.
                if not hits or (hits[0][0] - 1) % rows != i:
                    failures.append(f"query {i}: {hits[:2]}")
        except Exception as exc:
            failures.append(f"search: {exc!r}")

    writer = threading.Thread(target=change)
    searchers = [threading.Thread(target=search, args=(t,)) for t in range(3)]
    writer.start()
    for t in searchers:
        t.start()
    for t in searchers:
        t.join()
    stop.set()
    writer.join()
    assert state["version"] > 10
    assert failures == []


def test_an_index_built_from_a_newer_snapshot_is_not_changed_twice(tmp_path: Path) -> None:
    """The index is labelled with the version its vectors were read at: a change committed
    between reading the version and reading the vectors is not applied a second time."""
    cache = IndexCache(tmp_path / "indexes")
    uid, vectors = uuid.uuid4().hex, unit(4, seed=1)
    ids = np.arange(1, 5, dtype=np.int64)
    # Asked for version 1, the store answers with version 2, which already holds id 4.
    hits = cache.search(uid, 1, DIM, lambda: (2, ids, vectors), vectors[3], 4)
    assert hits[0][0] == 4
    cache.apply(uid, 1, 2, np.zeros(0, dtype=np.int64), ids[3:], vectors[3:])
    hits = cache.search(uid, 2, DIM, lambda: (2, ids, vectors), vectors[3], 4)
    assert sorted(h[0] for h in hits) == [1, 2, 3, 4]
    assert [p.name for p in (tmp_path / "indexes").iterdir()] == [f"{uid}-2.faiss"]


def test_loaded_indexes_stay_within_their_memory_bound(tmp_path: Path) -> None:
    """A server searching many collections keeps the indexes it searched most recently in
    memory, up to its bound; an index dropped from memory is read back from disk (not
    built again) at its next search, and answers the same."""
    vectors = unit(100, seed=3)
    ids = np.arange(1, 101, dtype=np.int64)
    cache = IndexCache(tmp_path / "indexes")
    uids = [uuid.uuid4().hex for _ in range(4)]
    loads: list[str] = []

    def loader(uid: str) -> Any:
        return lambda: (loads.append(uid), (1, ids, vectors))[1]

    first = cache.search(uids[0], 1, DIM, loader(uids[0]), vectors[7], 3)
    entry_bytes = cache.nbytes(cache._get(uids[0]))  # type: ignore[arg-type]
    assert entry_bytes >= 100 * DIM * 4
    cache.max_bytes = 2 * entry_bytes  # room for two collections' indexes
    for uid in uids[1:]:
        cache.search(uid, 1, DIM, loader(uid), vectors[7], 3)
    assert cache.loaded() == uids[2:]
    # The dropped index comes back from its saved file, not from the store.
    assert cache.search(uids[0], 1, DIM, loader(uids[0]), vectors[7], 3) == first
    assert loads == uids and cache.loaded() == [uids[3], uids[0]]
    # The index just searched is kept even when it alone is over the bound.
    cache.max_bytes = 1
    cache.search(uids[1], 1, DIM, loader(uids[1]), vectors[7], 3)
    assert cache.loaded() == [uids[1]]


def test_opening_the_store_sweeps_orphaned_index_files(tmp_path: Path) -> None:
    """An index saved by one process for a collection another process deleted meanwhile,
    and a temporary file a killed save left, are removed when a store opens; the indexes
    of live collections and a save still in progress stay."""
    import os

    data = tmp_path / "data"
    first = open_store(data)
    collection = first.create_collection(spec("kb"))
    vectors = unit(3, seed=2)
    put(first, collection, "doc", vectors)
    assert first.dense(collection, vectors[0], 1, None)
    folder = first.indexes.directory
    live = sorted(p.name for p in folder.iterdir())
    assert len(live) == 1 and live[0].startswith(collection.uid + "-")
    orphan = folder / f"{uuid.uuid4().hex}-4.faiss"
    orphan.write_bytes(b"index of a deleted collection")
    killed = folder / f".{collection.uid}-abc123.tmp"
    killed.write_bytes(b"half")
    os.utime(killed, (time.time() - 7200, time.time() - 7200))
    saving = folder / f".{collection.uid}-def456.tmp"
    saving.write_bytes(b"being written")
    first.close()
    second = open_store(data)
    try:
        assert sorted(p.name for p in folder.iterdir()) == sorted([*live, saving.name])
        assert second.dense(collection, vectors[1], 1, None)
    finally:
        second.close()


@pytest.mark.parametrize("threshold", [2, 100_000], ids=["hnsw", "flat"])
def test_a_stale_index_is_caught_up_not_rebuilt(tmp_path: Path, threshold: int) -> None:
    """Another process changes a collection this one has searched: the next search adds
    the new chunks and drops the deleted ones from the loaded index instead of building
    it again; a process starting later catches the saved index up the same way. A change
    to more than a fifth of the collection is rebuilt."""
    data = tmp_path / "data"
    first = open_store(data, hnsw_threshold=threshold)
    second = open_store(data, hnsw_threshold=threshold)
    builds: list[int] = []
    for store in (first, second):
        build = store.indexes.build

        def counted(dim: int, ids: Any, vectors: Any, build: Any = build) -> Any:
            builds.append(len(ids))
            return build(dim, ids, vectors)

        store.indexes.build = counted  # type: ignore[method-assign]
    try:
        collection = first.create_collection(spec("kb"))
        vectors = unit(400, seed=3)
        for n in range(20):
            put(first, collection, f"doc{n}", vectors[n * 20 : (n + 1) * 20])
        assert first.dense(collection, vectors[0], 1, None)[0][1] > 0.99
        assert builds == [400]

        fresh = unit(5, seed=4)
        added = put(second, collection, "new", fresh)
        gone = second.list_documents(collection, 0, 100)[0]
        second.delete_document(collection, gone.id)
        # The first process's loaded index is behind by two versions.
        assert first.dense(collection, fresh[2], 1, None)[0][0] == added[2]
        hits = {h[0] for h in first.dense(collection, vectors[0], 400, None)}
        removed_ids = set(range(1, 21))  # doc0's chunks, the first stored
        assert not hits & removed_ids and len(hits) == 385
        assert builds == [400]  # caught up, not rebuilt

        # A new process finds only the index file saved before the changes.
        third = open_store(data, hnsw_threshold=threshold)
        try:
            third.indexes.build = first.indexes.build  # type: ignore[method-assign]
            assert third.dense(collection, fresh[4], 1, None)[0][0] == added[4]
            assert builds == [400]
        finally:
            third.close()

        # Most of the collection replaced: rebuilt, not patched.
        for n in range(1, 20):
            put(second, collection, f"doc{n}", unit(20, seed=100 + n))
        assert len(first.dense(collection, fresh[0], 5, None)) == 5
        assert builds == [400, 385]
    finally:
        first.close()
        second.close()


def test_a_recreated_collection_never_uses_the_old_index(tmp_path: Path) -> None:
    """One process searched a collection; another deleted it and created one with the same
    name (and, in SQLite, the same row id) and the same version count. The first process
    must search the new collection's vectors, not its cached index of the old one."""
    data = tmp_path / "data"
    first, second = open_store(data), open_store(data)
    try:
        old = first.create_collection(spec("kb"))
        put(first, old, "a", unit(50, seed=1))
        assert len(first.dense(old, unit(1, seed=9)[0], 5, None)) == 5
        assert list((data / "rag" / "indexes").iterdir())

        second.delete_collection(TENANT, "kb")
        new = second.create_collection(spec("kb"))
        assert new.id == old.id and new.version == old.version  # the trap: same id, same version
        new_ids = put(second, new, "b", unit(50, seed=2))
        assert second.current_version(new) == first.current_version(new)

        again = first.get_collection(TENANT, "kb")
        hits = first.dense(again, unit(1, seed=9)[0], 5, None)
        assert len(hits) == 5 and {h[0] for h in hits} <= set(new_ids)
        # A third process that reads only the index files sees the new collection too.
        third = open_store(data)
        try:
            hits = third.dense(again, unit(1, seed=9)[0], 5, None)
            assert {h[0] for h in hits} <= set(new_ids)
        finally:
            third.close()
    finally:
        first.close()
        second.close()


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup, as an operator takes one."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _restore(backup: Path, db: Path) -> list[str]:
    """Put the backup back (the processes stopped); the index files left in place."""
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    _copy_database(backup, db)
    return sorted(p.name for p in (db.parent / "indexes").glob("*.faiss"))


def test_a_restored_database_never_uses_indexes_saved_after_its_backup(tmp_path: Path) -> None:
    """rag.db is backed up, the collection moves on (its index is rebuilt and saved at a
    later version), then the backup is restored with the index files left in place. The
    restored store numbers versions and chunks again from the backup's, so the saved index
    names chunks that are gone or, once new text is stored, other chunks. Searches must
    answer from the restored store, both before and after the next change."""
    data = tmp_path / "data"
    db = data / "rag" / "rag.db"
    backup = tmp_path / "rag-backup.db"
    before, after, later = unit(20, seed=1), unit(100, seed=2), unit(100, seed=3)

    first = open_store(data)
    collection = first.create_collection(spec("kb"))
    kept = put(first, collection, "a", before)
    assert first.dense(collection, before[3], 1, None)[0][0] == kept[3]
    _copy_database(db, backup)
    lost = put(first, collection, "b", after)
    first.close()
    second = open_store(data)  # reads the saved index, too far behind: rebuilt and saved
    assert second.dense(collection, after[7], 1, None)[0][0] == lost[7]
    second.close()
    saved = [p.name for p in (data / "rag" / "indexes").glob("*.faiss")]
    assert saved == [f"{collection.uid}-{collection.version + 2}.faiss"]

    assert _restore(backup, db) == saved
    restored = open_store(data)
    try:
        hits = restored.dense(collection, after[7], 120, None)
        assert {h[0] for h in hits} == set(kept)  # nothing of the lost document
        assert not list((data / "rag" / "indexes").glob(f"*-{collection.version + 2}.faiss"))
        # New text gets the lost document's chunk ids and the same collection version.
        reused = put(restored, collection, "c", later)
        assert reused == lost
        assert restored.current_version(collection) == collection.version + 2
    finally:
        restored.close()
    # A process that starts now has only index files from the restored store's history.
    fresh = open_store(data)
    try:
        for i in (0, 42, 99):
            assert fresh.dense(collection, later[i], 1, None)[0][0] == reused[i]
        assert fresh.dense(collection, before[5], 1, None)[0][0] == kept[5]
    finally:
        fresh.close()

    # Restored again, and this time changed before any search: the index saved at the
    # version the change reaches (built from "c") must not be taken for the new text.
    assert _restore(backup, db) == saved  # the same name, built from "c" this time
    again = open_store(data)
    try:
        newest = unit(100, seed=4)
        assert put(again, collection, "d", newest) == lost
    finally:
        again.close()
    last = open_store(data)
    try:
        for i in (0, 42, 99):
            assert last.dense(collection, newest[i], 1, None)[0][0] == lost[i]
    finally:
        last.close()


def test_stores_from_before_collection_uids_are_migrated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = open_store(data)
    collection = store.create_collection(spec("kb"))
    ids = put(store, collection, "a", unit(20, seed=1))
    store.close()
    with sqlite3.connect(data / "rag" / "rag.db") as conn:
        conn.execute("DROP INDEX ix_collections_uid")
        conn.execute("ALTER TABLE collections DROP COLUMN uid")
    conn.close()
    store = open_store(data)
    try:
        migrated = store.get_collection(TENANT, "kb")
        assert migrated.uid and migrated.uid != collection.uid
        hits = store.dense(migrated, unit(20, seed=1)[3], 1, None)
        assert hits[0][0] == ids[3]
    finally:
        store.close()


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "index"])
@pytest.mark.parametrize("threshold", [2, 100_000], ids=["hnsw", "flat"])
def test_selective_filters_find_far_away_chunks(
    tmp_path: Path, threshold: int, exact: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter that matches a few chunks far from the query still returns them, however
    many unfiltered chunks are nearer: searched exactly among few allowed chunks, or through
    the index restricted to the allowed ids."""
    if not exact:
        monkeypatch.setattr(sqlite_store, "_EXACT_FILTERED", 0)
    store = open_store(tmp_path / "data", hnsw_threshold=threshold)
    try:
        collection = store.create_collection(spec("kb"))
        query = unit(1, seed=0)[0]
        near = unit(2000, seed=1) * 0.2 + query
        near /= np.linalg.norm(near, axis=1, keepdims=True)
        put(store, collection, "near", near, {"team": "sales"})
        far = unit(3, seed=2)
        far_ids = put(store, collection, "far", far, {"team": "legal", "year": 2024})
        hits = store.dense(collection, query, 5, {"team": "legal"})
        assert sorted(h[0] for h in hits) == sorted(far_ids)
        expected = sorted(far_ids, key=lambda i: -float(far[far_ids.index(i)] @ query))
        assert [h[0] for h in hits] == expected
        assert [h[0] for h in store.dense(collection, query, 5, {"year": 2024})] == expected
        assert store.dense(collection, query, 5, {"team": "nobody"}) == []
        unfiltered = store.dense(collection, query, 5, None)
        assert not {h[0] for h in unfiltered} & set(far_ids)
    finally:
        store.close()


def _open_files(path: Path) -> int:
    """How many file descriptors of this process point at ``path``."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += fd.resolve() == path.resolve()
        except OSError:
            continue
    return count


def test_threads_that_finish_leave_no_open_connection(store: SQLiteStore) -> None:
    """A server's worker threads come and go; the connections of finished ones are closed
    when the next thread opens its own, so open files stay bounded however many come."""
    store.create_collection(spec("threads"))

    def use() -> None:
        assert [c.spec.name for c in store.list_collections(TENANT)] == ["threads"]

    opened = []
    for _ in range(40):
        workers = [threading.Thread(target=use) for _ in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        opened.append(_open_files(store.path))
    # This thread's connection and those of threads that may still be running: a handful
    # however many rounds (a connection kept per thread would reach 121 here).
    assert max(opened) <= 10, opened
    use()
    assert [c.spec.name for c in store.list_collections(TENANT)] == ["threads"]
