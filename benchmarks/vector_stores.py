"""The two retrieval stores side by side on one corpus: the embedded one (SQLite + FTS5 +
FAISS, ``rag.store = "sqlite"``) and the scale-out one (PostgreSQL + pgvector,
``rag.store = "pgvector"``, on a local PostgreSQL 16 from the pgserver wheel).

The corpus, queries and collection layout are retrieval_speed.py's (synthetic Spanish,
Portuguese and English paragraphs, one chunk each; the smaller collections are prefixes
of the largest). Every text is embedded once, before any timing, and both stores are
fed the same vectors, so the numbers are the stores' own:

1. Ingest: ``RagService.ingest`` of each collection into each store, embedding excluded
   (chunks/s of chunking + storing). pgvector builds a collection's HNSW index when it
   passes ``rag.hnsw_threshold`` and maintains it while the rest arrives (included);
   the embedded store builds its FAISS index at the first dense search (timed apart).
2. Search: ``search_collection`` (top_k=5) in each mode for ``--queries`` queries after a
   warm-up, each query embedded for real, the two stores alternating query by query so
   that other load on the machine weighs on both alike. p50/p95 per store, mode and size.
3. Quality of the approximate indexes at the largest size: recall@10 of each store's dense
   search against exact inner-product search over the same vectors.

Usage: python benchmarks/vector_stores.py [--sizes 10000,100000] [--queries 200]
Writes benchmarks/results/vector_stores.json; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pgcluster

import retrieval_speed as rs  # noqa: E402
from tests.pgcluster import running_postgres  # noqa: E402

from genaiops.config import load_settings  # noqa: E402
from genaiops.rag import chunking  # noqa: E402
from genaiops.rag.service import RagService  # noqa: E402
from genaiops.rag.stores.base import Collection  # noqa: E402
from genaiops.rag.stores.pgvector import PgVectorStore, conninfo  # noqa: E402
from genaiops.rag.stores.sqlite import SQLiteStore  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "vector_stores.json"
STORES = ("sqlite", "pgvector")
# Server settings of the benchmark's PostgreSQL: room for the largest collection's vectors
# and its HNSW graph in memory, as a production server would be given.
PG_SETTINGS = ("shared_buffers=1GB", "maintenance_work_mem=1GB", "max_wal_size=4GB")


def prefix(documents: list[Any], size: int) -> list[Any]:
    out, total = [], 0
    for doc in documents:
        if total >= size:
            break
        out.append(doc)
        total += len(doc.sections)
    return out


def build(
    service: RagService, store: str, documents: list[Any], sizes: list[int]
) -> dict[int, dict[str, Any]]:
    built: dict[int, dict[str, Any]] = {}
    index_s = [0.0]
    if isinstance(service.store, PgVectorStore):
        indexes = service.store.indexes
        original = indexes.build_if_large

        def timed(collection: Collection) -> None:
            started = time.perf_counter()
            original(collection)
            index_s[0] += time.perf_counter() - started

        indexes.build_if_large = timed  # type: ignore[method-assign]
    for size in sizes:
        docs = prefix(documents, size)
        collection = service.create_collection(rs.TENANT, f"kb-{size}")
        index_s[0] = 0.0
        rs.log(f"{store}: ingest kb-{size} ({len(docs)} documents) ...")
        report = service.ingest(
            collection,
            [("kb", lambda d=docs: d)],
            rs.progress_printer(f"{store} kb-{size}", len(docs)),
        )
        if report.failed:
            raise RuntimeError(f"{store} kb-{size}: {report.failed[:3]}")
        collection = service.collection(rs.TENANT, f"kb-{size}")
        assert collection.chunks == size, (store, collection.chunks)
        entry: dict[str, Any] = {
            "collection": collection,
            "ingest_s": round(report.seconds, 2),
            "ingest_chunks_per_s": round(size / report.seconds, 1),
        }
        if isinstance(service.store, PgVectorStore):
            entry["hnsw_index_build_s_within_ingest"] = round(index_s[0], 2)
            entry["hnsw_index"] = service.store.indexes.valid(collection)
        rs.log(
            f"  {store} kb-{size}: {report.seconds:.1f} s = {size / report.seconds:.0f} chunks/s"
        )
        built[size] = entry
    return built


def first_dense(service: RagService, collection: Collection, query: str) -> float:
    started = time.perf_counter()
    service.search_collection(collection, query, top_k=rs.TOP_K, mode="dense")
    return round((time.perf_counter() - started) * 1000, 1)


def time_side_by_side(
    services: dict[str, RagService],
    collections: dict[str, Collection],
    queries: list[str],
) -> dict[str, dict[str, list[float]]]:
    samples = {s: {m: [] for m in rs.MODES} for s in STORES}
    for i, q in enumerate(queries):
        order = STORES if i % 2 == 0 else STORES[::-1]
        for mode in rs.MODES[i % 3 :] + rs.MODES[: i % 3]:
            for store in order:
                started = time.perf_counter()
                services[store].search_collection(collections[store], q, top_k=rs.TOP_K, mode=mode)
                samples[store][mode].append((time.perf_counter() - started) * 1000)
    return samples


def stored_vectors(service: RagService, collection: Collection) -> tuple[np.ndarray, np.ndarray]:
    store = service.store
    if isinstance(store, SQLiteStore):
        _, ids, vectors = store._snapshot(collection)
        return np.asarray(ids), np.asarray(vectors)
    assert isinstance(store, PgVectorStore)
    import psycopg

    with psycopg.connect(store.pool.conninfo) as conn:
        rows = conn.execute(
            "SELECT id, embedding::real[] FROM rag_chunks WHERE collection_id = %s ORDER BY id",
            (collection.id,),
        ).fetchall()
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    return ids, np.asarray([r[1] for r in rows], dtype=np.float32)


def recall_at_10(
    service: RagService, collection: Collection, queries: np.ndarray
) -> dict[str, Any]:
    ids, vectors = stored_vectors(service, collection)
    recalls, latency = [], []
    for q in queries:
        exact = set(ids[np.argsort(-(vectors @ q), kind="stable")[:10]].tolist())
        started = time.perf_counter()
        found = service.store.dense(collection, q, 10, None)
        latency.append((time.perf_counter() - started) * 1000)
        recalls.append(len(exact & {i for i, _ in found}) / 10)
    return {
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "dense_k10_latency_ms": rs.summarise(latency),
    }


def disk_use(sqlite_data: Path, url: str) -> dict[str, Any]:
    """Space taken by every collection built (all sizes), per store and part, in MB."""
    import psycopg

    rag = sqlite_data / "rag"
    embedded = {
        "sqlite_file_incl_fts5": sum(p.stat().st_size for p in rag.glob("rag.db*")),
        "faiss_index_files": sum(p.stat().st_size for p in (rag / "indexes").glob("*.faiss")),
    }
    with psycopg.connect(conninfo(url)) as conn:
        # Tables with their indexes and TOAST; the HNSW indexes apart.
        parts = {
            f"{table}_with_indexes": conn.execute(
                "SELECT pg_total_relation_size(%s::regclass)", (table,)
            ).fetchone()[0]
            for table in ("rag_chunks", "rag_terms", "rag_documents")
        }
        parts["of_which_hnsw_indexes"] = conn.execute(
            "SELECT COALESCE(SUM(pg_relation_size(indexrelid)), 0)::bigint FROM pg_index"
            " JOIN pg_class k ON k.oid = indexrelid WHERE k.relname LIKE 'rag_hnsw_%%'"
        ).fetchone()[0]
    mb = 2**20
    return {
        "sqlite": {k: round(v / mb, 1) for k, v in embedded.items()},
        "pgvector": {k: round(v / mb, 1) for k, v in parts.items()},
    }


def main() -> None:
    sizes = sorted({int(s) for s in ARGS.sizes.split(",") if s.strip()})
    results: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": rs.versions(),
        "postgres_settings": list(PG_SETTINGS),
        "sizes": sizes,
        "queries": ARGS.queries,
        "top_k": rs.TOP_K,
    }
    corpus = rs.Corpus(rs.SEED + 1)
    documents = rs.search_corpus(corpus, max(sizes))
    queries = corpus.queries(ARGS.queries)
    warmup = corpus.queries(rs.WARMUP_QUERIES, avoid=set(queries))
    with (
        tempfile.TemporaryDirectory(prefix="genaiops-vs-") as tmp,
        running_postgres(*PG_SETTINGS) as url,
    ):
        services = {
            store: RagService(
                load_settings(data_dir=Path(tmp) / store, rag={"store": store, "url": url})
            )
            for store in STORES
        }
        import psycopg

        with psycopg.connect(conninfo(url)) as conn:
            results["versions"]["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
            results["versions"]["pgvector"] = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()[0]
        try:
            settings = services["sqlite"].settings.rag
            results["rag_settings"] = settings.model_dump(
                mode="json",
                include={
                    "hnsw_threshold",
                    "hnsw_m",
                    "hnsw_ef_construction",
                    "hnsw_ef_search",
                    "pgvector_hnsw_threshold",
                    "pgvector_hnsw_m",
                    "pgvector_hnsw_ef_construction",
                },
            )
            # retrieval_speed.py's memo in front of the real embedder: each text embedded once.
            shared = rs._MemoEmbedders(services["sqlite"].embedders)
            embedder = shared.get(settings.default_embedder)
            rs.log(f"embedding the corpus once ({max(sizes)} paragraphs) ...")
            started = time.perf_counter()
            texts = [
                chunking.embedding_text(chunk, doc.title)
                for doc in documents
                for chunk in chunking.chunk_document(
                    doc, chunk_tokens=settings.chunk_tokens, overlap_tokens=settings.chunk_overlap
                )
            ]
            for start in range(0, len(texts), 512):
                embedder.embed(texts[start : start + 512])
                if start % 10_240 == 0:
                    rs.log(f"  embedded {start + 512}/{len(texts)}")
            results["embedding_s"] = round(time.perf_counter() - started, 1)
            built = {}
            for store in STORES:
                services[store].embedders = shared  # type: ignore[assignment]
                built[store] = build(services[store], store, documents, sizes)
            # Searches embed their queries for real, as a deployment does.
            for service in services.values():
                service.embedders = shared.inner
            results["search"] = {}
            for size in sizes:
                collections = {s: built[s][size]["collection"] for s in STORES}
                entry: dict[str, Any] = {
                    s: {k: v for k, v in built[s][size].items() if k != "collection"}
                    for s in STORES
                }
                entry["sqlite"]["first_dense_search_ms"] = first_dense(
                    services["sqlite"], collections["sqlite"], queries[0]
                )
                time_side_by_side(services, collections, warmup)
                samples = time_side_by_side(services, collections, queries)
                for store in STORES:
                    entry[store]["latency_ms"] = {
                        m: rs.summarise(samples[store][m]) for m in rs.MODES
                    }
                    for m in rs.MODES:
                        s = entry[store]["latency_ms"][m]
                        rs.log(
                            f"  {size} {store:>8} {m:>7}:"
                            f" p50 {s['p50']:.2f} ms, p95 {s['p95']:.2f} ms"
                        )
                results["search"][str(size)] = entry
            largest = max(sizes)
            vectors = embedder.embed(queries)
            results["recall_at_10"] = {
                s: recall_at_10(services[s], built[s][largest]["collection"], vectors)
                for s in STORES
            }
            rs.log(f"recall@10 at {largest}: {results['recall_at_10']}")
            results["disk_mb_all_collections"] = disk_use(Path(tmp) / "sqlite", url)
            rs.log(f"disk: {results['disk_mb_all_collections']}")
        finally:
            for service in services.values():
                service.close()
    ARGS.output.parent.mkdir(parents=True, exist_ok=True)
    ARGS.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    print("| chunks | store | ingest chunks/s | lexical p50/p95 | dense p50/p95 | hybrid p50/p95 |")
    print("|---|---|---|---|---|---|")
    for size, entry in results["search"].items():
        for store in STORES:
            e = entry[store]
            cells = [
                f"{e['latency_ms'][m]['p50']:.1f} / {e['latency_ms'][m]['p95']:.1f}"
                for m in rs.MODES
            ]
            print(
                f"| {int(size):,} | {store} | {e['ingest_chunks_per_s']:.0f} | "
                + " | ".join(cells)
                + " |"
            )
    for store, r in results.get("recall_at_10", {}).items():
        print(f"recall@10 {store}: {r['recall_at_10']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS)
    ARGS = parser.parse_args()
    main()
