"""What a search costs after another process changed a large collection: the FAISS index
of this process is caught up from the store (new chunks added, deleted ones dropped)
instead of rebuilt.

One process (A) stores ``--chunks`` synthetic unit vectors (512 dimensions, 500 per
document) and searches once, which builds its index (HNSW above ``rag.hnsw_threshold``);
a second store on the same data directory (B, as a CLI ingest or another replica would)
adds one document of 20 chunks and deletes another; A's next search is timed, then one
more. The build time is what every such search cost before catching up existed.

Usage: python benchmarks/index_catch_up.py [--chunks 100000]
Writes benchmarks/results/index_catch_up.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from genaiops.config import load_settings
from genaiops.rag.documents import Chunk, LoadedDocument, Section
from genaiops.rag.stores.base import Collection, CollectionSpec
from genaiops.rag.stores.sqlite import SQLiteStore, from_settings

DIM = 512
PER_DOCUMENT = 500
RESULTS = Path(__file__).parent / "results" / "index_catch_up.json"


def unit(rng: np.random.Generator, rows: int) -> np.ndarray:
    v = rng.standard_normal((rows, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def store_document(store: SQLiteStore, collection: Collection, key: str, v: np.ndarray) -> None:
    texts = [f"{key} {i}" for i in range(len(v))]
    document = LoadedDocument(
        source=key,
        title=key,
        sections=[Section(t) for t in texts],
        kind="txt",
        content_hash=hashlib.sha256(v.tobytes()).hexdigest(),
    )
    chunks = [Chunk(text=t, index=i, tokens=2) for i, t in enumerate(texts)]
    hashes = [hashlib.sha256(row.tobytes()).hexdigest() for row in v]
    store.replace_document(collection, document, chunks, hashes, v)


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="genaiops-catch-up-") as tmp:
        settings = load_settings(data_dir=Path(tmp))
        a, b = from_settings(settings), from_settings(settings)
        try:
            spec = CollectionSpec(
                tenant="bench", name="kb", embedder="synthetic", dim=DIM, chunk_tokens=64,
                chunk_overlap=0,
            )  # fmt: skip
            collection = a.create_collection(spec)
            stored = timed(
                lambda: [
                    store_document(a, collection, f"d{n}", unit(rng, PER_DOCUMENT))
                    for n in range(ARGS.chunks // PER_DOCUMENT)
                ]
            )
            query = unit(rng, 1)[0]
            build = timed(lambda: a.dense(collection, query, 5, None))
            kind = a.indexes.kind(collection.uid)
            print(
                f"{ARGS.chunks} chunks stored in {stored:.1f} s; first search builds "
                f"the {kind} index: {build:.2f} s"
            )
            store_document(b, collection, "new", unit(rng, 20))
            b.delete_document(collection, b.list_documents(collection, 0, 1)[0].id)
            catch_up = timed(lambda: a.dense(collection, query, 5, None))
            after = timed(lambda: a.dense(collection, query, 5, None))
        finally:
            a.close()
            b.close()
    results = {
        "chunks": ARGS.chunks,
        "dim": DIM,
        "index": kind,
        "hnsw_threshold": settings.rag.hnsw_threshold,
        "store_s": round(stored, 2),
        "build_s": round(build, 2),
        "search_after_other_process_changed_2_documents_ms": round(catch_up * 1000, 1),
        "next_search_ms": round(after * 1000, 2),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    print(
        f"after another process added and deleted a document: {catch_up * 1000:.1f} ms "
        f"(caught up; a rebuild takes {build:.1f} s); next search {after * 1000:.2f} ms"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    ARGS = parser.parse_args()
    main()
