"""The retrieval store on a real PostgreSQL server with pgvector: the embedded store's
service tests run again on it, it ranks exactly as the embedded store does, its HNSW
index serves large collections, replicas share collections, text is encrypted at rest,
and a killed ingest leaves it consistent and resumable."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, text

from genaiops.config import load_settings
from genaiops.errors import ConfigError, InvalidRequest, StoreUnavailable
from genaiops.rag.crypto import FINGERPRINT, Sealer
from genaiops.rag.service import Mode, RagService
from genaiops.rag.stores.base import CollectionSpec
from genaiops.rag.stores.pgvector import PgVectorStore, conninfo, hnsw
from genaiops.server.errors import error_response
from tests.conftest import Server, genaiops_cli, openai_client, start_server, stop_server
from tests.pgcluster import running_postgres
from tests.rag import test_service as embedded
from tests.rag.test_resume import kill_mid_ingest_then_resume, write_corpus

pytestmark = pytest.mark.integration

TENANT = embedded.TENANT


def pg_service(data: Path, url: str, **rag: Any) -> RagService:
    return RagService(load_settings(data_dir=data, rag={"store": "pgvector", "url": url, **rag}))


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo(url)) as conn:
        return conn.execute(sql, args).fetchall()


def assert_consistent(url: str) -> None:
    """Every document's chunk count matches its chunks, every chunk has postings, and the
    collection totals BM25 uses match the rows."""
    assert (
        query(
            url,
            "SELECT d.id FROM rag_documents d WHERE d.chunks !="
            " (SELECT COUNT(*) FROM rag_chunks c WHERE c.document_id = d.id)",
        )
        == []
    )
    assert (
        query(
            url,
            "SELECT c.id FROM rag_chunks c WHERE c.n_terms !="
            " (SELECT COALESCE(SUM(tf), 0) FROM rag_terms t WHERE t.chunk_id = c.id)",
        )
        == []
    )
    totals = query(
        url,
        "SELECT k.id, k.n_documents, k.n_chunks, k.n_terms,"
        " (SELECT COUNT(*) FROM rag_documents d WHERE d.collection_id = k.id),"
        " (SELECT COUNT(*) FROM rag_chunks c WHERE c.collection_id = k.id),"
        " (SELECT COALESCE(SUM(n_terms), 0) FROM rag_chunks c WHERE c.collection_id = k.id)"
        " FROM rag_collections k",
    )
    for cid, documents, chunks, terms, *actual in totals:
        assert [documents, chunks, terms] == actual, cid


# -- the embedded store's service tests, on pgvector --------------------------------------

docs = embedded.docs


@pytest.fixture
def rag(tmp_path: Path, database_url: str) -> Iterator[RagService]:
    service = pg_service(tmp_path / "data", database_url)
    service.create_collection(TENANT, "handbook")
    yield service
    service.close()
    assert_consistent(database_url)


test_collections_are_validated_and_scoped = embedded.test_collections_are_validated_and_scoped
test_ingest_search_update_and_delete = embedded.test_ingest_search_update_and_delete
test_rows_metadata_and_filters = embedded.test_rows_metadata_and_filters
test_operator_filters = embedded.test_operator_filters
test_rows_deleted_from_a_file_leave_the_collection = (
    embedded.test_rows_deleted_from_a_file_leave_the_collection
)
test_relevance_needs_more_than_a_shared_word = embedded.test_relevance_needs_more_than_a_shared_word
test_prune_deletes_only_files_gone_from_the_folder = (
    embedded.test_prune_deletes_only_files_gone_from_the_folder
)
test_user_metadata_tags_every_document = embedded.test_user_metadata_tags_every_document
test_rows_are_embedded_in_batches_across_documents = (
    embedded.test_rows_are_embedded_in_batches_across_documents
)


# -- pgvector on its own ------------------------------------------------------------------

MODES: tuple[Mode, ...] = ("lexical", "dense", "hybrid")
QUESTIONS = [
    "¿Qué es LoRA?",
    "politica de ferias colaborador",
    "How often must passwords be rotated?",
    "perplejidad del modelo",
    "laptops full-disk encryption",
    "matriz del adaptador",  # "matrices", "adaptadores": the other number
]


def test_ranks_exactly_as_the_embedded_store(tmp_path: Path, docs: Path, database_url: str) -> None:
    """BM25 in SQL gives FTS5's scores, and exact inner product gives FAISS's, for the same
    chunks: moving a collection between stores does not change what it answers."""
    results: dict[str, list[list[tuple[str, str, float]]]] = {}
    for store in ("sqlite", "pgvector"):
        rag = RagService(
            load_settings(data_dir=tmp_path / store, rag={"store": store, "url": database_url})
        )
        try:
            rag.create_collection(TENANT, "handbook", chunk_tokens=32, chunk_overlap=4)
            rag.ingest_paths(TENANT, "handbook", [docs])
            ranked = []
            for question in QUESTIONS:
                for mode in MODES:
                    hits = rag.search(TENANT, "handbook", question, mode=mode, top_k=8)
                    ranked.append([(Path(h.source).name, h.text, h.score) for h in hits])
            results[store] = ranked
        finally:
            rag.close()
    assert sum(len(r) for r in results["sqlite"]) > 3 * len(QUESTIONS)
    for embedded_hits, pg_hits in zip(results["sqlite"], results["pgvector"], strict=True):
        assert [h[:2] for h in pg_hits] == [h[:2] for h in embedded_hits]
        assert [h[2] for h in pg_hits] == pytest.approx([h[2] for h in embedded_hits], rel=1e-5)


def test_large_collections_search_through_their_hnsw_index(
    tmp_path: Path, database_url: str
) -> None:
    rows = [
        f"{i};Pregunta {i} sobre el reembolso de gastos de la sucursal {i}." for i in range(150)
    ]
    faq = tmp_path / "faq.csv"
    faq.write_text("id;q\n" + "\n".join(rows) + "\n", encoding="utf-8")
    rag = pg_service(tmp_path / "data", database_url, pgvector_hnsw_threshold=100)
    try:
        rag.create_collection(TENANT, "faq")
        rag.ingest_paths(TENANT, "faq", [faq], text_field="q", id_field="id")
        collection = rag.collection(TENANT, "faq")
        store: PgVectorStore = rag.store  # type: ignore[assignment]
        assert collection.chunks == 150 and store.indexes.valid(collection)
        dim = collection.spec.dim
        with psycopg.connect(conninfo(database_url)) as conn:
            conn.execute("SET LOCAL enable_sort = off")  # as the store's query does
            vector = conn.execute("SELECT embedding::text FROM rag_chunks LIMIT 1").fetchone()
            plan = conn.execute(
                f"EXPLAIN SELECT id FROM rag_chunks WHERE collection_id = {collection.id}"
                f" ORDER BY (embedding::vector({dim})) <#> %s::vector({dim}) LIMIT 5",
                vector,
            ).fetchall()
        assert f"rag_hnsw_{collection.uid}" in " ".join(r[0] for r in plan)
        for i in (3, 77, 149):
            hit = rag.search(TENANT, "faq", rows[i].split(";", 1)[1], mode="dense", top_k=1)
            assert hit[0].locator == str(i)
        # A filter that few chunks pass still finds them (exactly, past the graph).
        source = str(faq.resolve())
        only = rag.search(
            TENANT, "faq", "reembolso", mode="dense", top_k=3, filters={"source": source}
        )
        assert len(only) == 3
        assert rag.search(TENANT, "faq", "reembolso", filters={"source": "nope"}) == []
    finally:
        rag.close()


def test_hnsw_index_upkeep(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ingest run adding little to an indexed collection keeps its index (chunks are
    added to the graph); one adding a large share rebuilds it at its end; an index lost
    (a build cut short) is rebuilt from the next search, which is exact meanwhile; one
    replica builds at a time."""
    monkeypatch.setattr(hnsw, "_REBUILD_MIN", 10)

    def csv(name: str, rows: range) -> Path:
        path = tmp_path / f"{name}.csv"
        lines = [f"{i};Consulta {i} sobre el viático del proyecto {i}." for i in rows]
        path.write_text("id;q\n" + "\n".join(lines) + "\n", encoding="utf-8")
        return path

    def index_oid(collection: Any) -> int | None:
        found = query(
            database_url, "SELECT oid FROM pg_class WHERE relname = %s", hnsw.index_name(collection)
        )
        return int(found[0][0]) if found else None

    rag = pg_service(tmp_path / "data", database_url, pgvector_hnsw_threshold=100)
    try:
        rag.create_collection(TENANT, "faq")
        rag.ingest_paths(TENANT, "faq", [csv("a", range(150))], text_field="q", id_field="id")
        collection = rag.collection(TENANT, "faq")
        built = index_oid(collection)
        assert built is not None

        rag.ingest_paths(TENANT, "faq", [csv("b", range(150, 160))], text_field="q", id_field="id")
        assert index_oid(collection) == built  # 10 chunks: added to the graph
        rag.ingest_paths(TENANT, "faq", [csv("c", range(160, 220))], text_field="q", id_field="id")
        rebuilt = index_oid(rag.collection(TENANT, "faq"))
        assert rebuilt is not None and rebuilt != built  # 60 chunks (> 20%): rebuilt

        store: PgVectorStore = rag.store  # type: ignore[assignment]
        store.indexes.drop(collection)
        hit = rag.search(TENANT, "faq", "viático del proyecto 201", mode="dense", top_k=1)
        assert hit[0].locator == "201"
        deadline = time.monotonic() + 60
        while not store.indexes.valid(collection):
            assert time.monotonic() < deadline, "the search did not rebuild the index"
            time.sleep(0.2)
        for i in (5, 155, 219):
            hit = rag.search(
                TENANT,
                "faq",
                f"Consulta {i} sobre el viático del proyecto {i}.",
                mode="dense",
                top_k=1,
            )
            assert hit[0].locator == str(i)

        while store.indexes._building:  # the search's build ends with an ANALYZE
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Another replica is building the index (it holds the build lock; its index is
        # listed as invalid meanwhile): this one neither drops it nor builds its own.
        store.indexes.drop(collection)
        lock = ("genaiops:" + hnsw.index_name(collection),)
        with psycopg.connect(conninfo(database_url), autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(hashtext(%s))", lock)
            store.indexes.build_if_large(collection)
            assert index_oid(collection) is None
            # That replica stopped building (a server notices a closed session a moment
            # later; the unlock is immediate): the next build goes ahead.
            other.execute("SELECT pg_advisory_unlock(hashtext(%s))", lock)
        store.indexes.build_if_large(collection)
        assert store.indexes.valid(collection)
    finally:
        rag.close()


def test_replicas_share_collections(tmp_path: Path, docs: Path, database_url: str) -> None:
    """Two services on one database (two replicas): what one ingests the other finds at
    once, and their concurrent ingests into one collection both land whole."""
    first = pg_service(tmp_path / "a", database_url)
    second = pg_service(tmp_path / "b", database_url)
    try:
        first.create_collection(TENANT, "handbook")
        first.ingest_paths(TENANT, "handbook", [docs / "lora.md"])
        hits = second.search(TENANT, "handbook", "¿Qué es LoRA?")
        assert Path(hits[0].source).name == "lora.md"

        folders = []
        for n in range(2):
            folder = tmp_path / f"batch{n}"
            write_corpus(folder, files=12)
            folders.append(folder)
        errors: list[BaseException] = []

        def ingest(service: RagService, folder: Path) -> None:
            try:
                service.ingest_paths(TENANT, "handbook", [folder])
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=ingest, args=(s, f))
            for s, f in zip((first, second), folders, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert first.collection(TENANT, "handbook").documents == 25
        assert_consistent(database_url)

        lora = next(
            d
            for d in second.documents(TENANT, "handbook")
            if d.kind == "md" and d.source.endswith("lora.md")
        )
        second.delete_document(TENANT, "handbook", lora.id)
        for mode in ("lexical", "dense"):
            found = first.search(TENANT, "handbook", "LoRA rango bajo", mode=mode)  # type: ignore[arg-type]
            assert all(not h.source.endswith("lora.md") for h in found)
    finally:
        first.close()
        second.close()
    assert_consistent(database_url)


def test_encrypted_at_rest(
    tmp_path: Path, docs: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAIOPS_RAG_KEY", base64.b64encode(os.urandom(32)).decode())
    rag = pg_service(tmp_path / "data", database_url)
    try:
        assert rag.create_collection(TENANT, "secret").encrypted
        rag.ingest_paths(TENANT, "secret", [docs])
        hits = rag.search(TENANT, "secret", "ferias", mode="lexical")
        assert [Path(h.source).name for h in hits] == ["ferias.txt"]
        hit = rag.search(TENANT, "secret", "LoRA")[0]
        assert "rango bajo" in hit.text and hit.title == "Guía de ajuste fino"
    finally:
        rag.close()
    stored: list[bytes] = []
    for row in query(database_url, "SELECT text, heading FROM rag_chunks"):
        stored += [bytes(v) for v in row if v is not None]
    stored += [bytes(r[0]) for r in query(database_url, "SELECT title FROM rag_documents")]
    stored += [r[0].encode() for r in query(database_url, "SELECT term FROM rag_terms")]
    raw = b"\n".join(stored)
    assert len(raw) > 1000
    # Content hashes are keyed: a stored hash never confirms a guess of the text.
    secret = "(SELECT id FROM rag_collections WHERE name = 'secret')"
    hashes = [r[0] for r in query(database_url, "SELECT content_hash FROM rag_documents"
                                  f" WHERE collection_id = {secret}")]  # fmt: skip
    hashes += [r[0] for r in query(database_url, "SELECT text_hash FROM rag_chunks"
                                   f" WHERE collection_id = {secret}")]  # fmt: skip
    assert len(hashes) > 5 and all(h.startswith(FINGERPRINT) for h in hashes)
    for word in ("colaborador", "Passwords", "perplejidad", "adaptadores", "matrices", "ninety"):
        assert word.encode() not in raw and word.lower().encode() not in raw, word

    monkeypatch.setenv("GENAIOPS_RAG_KEY", base64.b64encode(os.urandom(32)).decode())
    wrong = pg_service(tmp_path / "data", database_url)
    try:
        with pytest.raises(InvalidRequest, match="encrypted"):
            wrong.search(TENANT, "secret", "ferias")
    finally:
        wrong.close()


def test_bare_hashes_of_an_older_store_are_keyed_in_place(
    tmp_path: Path, docs: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAIOPS_RAG_KEY", base64.b64encode(os.urandom(32)).decode())
    with monkeypatch.context() as old:  # a release that stored bare SHA-256 digests
        old.setattr(Sealer, "fingerprint", lambda self, digest: digest)
        rag = pg_service(tmp_path / "data", database_url)
        try:
            rag.create_collection(TENANT, "secret")
            assert rag.ingest_paths(TENANT, "secret", [docs]).added > 0
        finally:
            rag.close()
    with psycopg.connect(conninfo(database_url)) as conn:
        conn.execute("UPDATE rag_collections SET hashes_keyed = false")
    bare = "SELECT count(*) FROM rag_chunks WHERE text_hash NOT LIKE 'k:%%'"
    assert query(database_url, bare)[0][0] > 0
    rag = pg_service(tmp_path / "data", database_url)
    try:
        again = rag.ingest_paths(TENANT, "secret", [docs])
        assert again.added == again.updated == again.embedded == 0 and again.unchanged > 0
    finally:
        rag.close()
    assert query(database_url, bare)[0][0] == 0
    documents = "SELECT count(*) FROM rag_documents WHERE content_hash NOT LIKE 'k:%%'"
    assert query(database_url, documents)[0][0] == 0


def test_configuration_errors_are_clear(tmp_path: Path, database_url: str) -> None:
    with pytest.raises(ConfigError, match="PostgreSQL URL"):
        pg_service(tmp_path, "sqlite:///x.db")
    with pytest.raises(ConfigError, match="needs a PostgreSQL URL"):
        RagService(load_settings(data_dir=tmp_path, rag={"store": "pgvector"}))
    # A role that may not create the extension in a database that lacks it.
    admin = create_engine(
        database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
    )
    name = "plain" + os.urandom(4).hex()
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN"))
        conn.execute(text(f"CREATE DATABASE {name} OWNER {name}"))
    try:
        url = database_url.replace("postgres@", f"{name}@").rsplit("/", 1)[0] + "/" + name
        with pytest.raises(ConfigError, match="pgvector extension is not available"):
            pg_service(tmp_path, url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
            conn.execute(text(f"DROP ROLE {name}"))
        admin.dispose()


def test_tables_of_a_newer_release_are_refused(tmp_path: Path, database_url: str) -> None:
    pg_service(tmp_path, database_url).close()
    assert query(database_url, "SELECT version FROM rag_schema") == [(1,)]
    with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
        conn.execute("UPDATE rag_schema SET version = 99")
    with pytest.raises(ConfigError, match="version 99, newer than this genaiops"):
        pg_service(tmp_path, database_url)


def test_kill_mid_ingest_then_resume(tmp_path: Path, database_url: str) -> None:
    kill_mid_ingest_then_resume(
        tmp_path,
        os.environ
        | {
            "GENAIOPS_DATA_DIR": str(tmp_path / "data"),
            "GENAIOPS_RAG__STORE": "pgvector",
            "GENAIOPS_RAG__URL": database_url,
        },
        lambda: int(query(database_url, "SELECT COUNT(*) FROM rag_documents")[0][0]),
        lambda: assert_consistent(database_url),
    )


def test_replicas_on_separate_nodes_serve_one_collection_over_http(
    tmp_path: Path, database_url: str
) -> None:
    """Two servers with their own data directories (two nodes) and one PostgreSQL
    database for keys and collections: what one is sent, the other retrieves and cites."""
    config = f"""
bundled_models = ["smollm2-135m-instruct"]
[storage]
url = "{database_url}"
[rag]
store = "pgvector"
"""
    servers: list[Server] = []
    try:
        for name in ("node-a", "node-b"):
            servers.append(start_server(tmp_path, name, config))
        a, b = servers
        assert a.key is not None and b.key is None  # one installation, one admin key
        headers = {"Authorization": f"Bearer {a.key}"}
        r = httpx.post(a.url + "/v1/collections", json={"name": "handbook"}, headers=headers)
        assert r.status_code == 201, r.text
        files = [
            ("files", ("lora.md", embedded.LORA.encode(), "text/markdown")),
            ("files", ("ferias.txt", embedded.FERIAS.encode(), "text/plain")),
        ]
        r = httpx.post(
            a.url + "/v1/collections/handbook/documents", files=files, headers=headers, timeout=120
        )
        assert r.status_code == 200 and r.json()["added"] == 2, r.text

        listed = httpx.get(b.url + "/v1/collections/handbook", headers=headers).json()
        assert listed["documents"] == 2 and listed["chunks"] >= 2
        hits = httpx.post(
            b.url + "/v1/collections/handbook/search",
            json={"query": "dias de ferias por ano", "top_k": 3},
            headers=headers,
            timeout=60,
        ).json()["data"]
        assert hits[0]["source"] == "ferias.txt"
        reply = openai_client(b.base_url, a.key)
        answer = reply.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "Quantos dias de férias por ano?"}],
            max_tokens=20,
            temperature=0,
            extra_body={"rag": {"collection": "handbook", "top_k": 2}},
        ).model_dump()
        assert answer["citations"][0]["chunk_id"] == hits[0]["chunk_id"]

        r = httpx.delete(
            b.url + f"/v1/collections/handbook/documents/{hits[0]['document_id']}",
            headers=headers,
        )
        assert r.status_code == 200, r.text
        again = httpx.post(
            a.url + "/v1/collections/handbook/search",
            json={"query": "dias de ferias por ano", "mode": "lexical"},
            headers=headers,
            timeout=60,
        ).json()["data"]
        assert all(h["source"] != "ferias.txt" for h in again)
    finally:
        for server in servers:
            stop_server(server)
    assert_consistent(database_url)


def test_collections_copy_between_stores(tmp_path: Path, docs: Path, database_url: str) -> None:
    """`genaiops collections copy` moves collections from the embedded store to pgvector
    (and back) with their vectors: both answer every search alike; a second copy only
    brings what changed; a collection that cannot be copied fails the command clearly."""
    data = tmp_path / "data"
    rag = embedded.make_service(data)
    try:
        rag.create_collection(TENANT, "handbook", chunk_tokens=32, chunk_overlap=4)
        rag.ingest_paths(TENANT, "handbook", [docs])
        rag.create_collection("globex", "handbook")
        rag.ingest_paths("globex", "handbook", [docs / "ferias.txt"])
    finally:
        rag.close()

    def ranked(service: RagService) -> list[Any]:
        return [
            [
                (h.source, h.text, round(h.score, 4))
                for h in service.search(TENANT, "handbook", q, mode=m, top_k=8)
            ]  # type: ignore[arg-type]
            for q in QUESTIONS
            for m in ("lexical", "dense", "hybrid")
        ]

    def copy(*args: str, into: Path = data) -> subprocess.CompletedProcess[str]:
        return genaiops_cli("collections", "copy", "--json", *args, data_dir=into, check=False)

    done = copy("--to", "pgvector", "--to-url", database_url)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failed"] == []
    assert {(c["tenant"], c["copied"], c["unchanged"]) for c in report["collections"]} == {
        (TENANT, 3, 0),
        ("globex", 1, 0),
    }
    source, target = embedded.make_service(data), pg_service(tmp_path / "pg", database_url)
    try:
        assert ranked(target) == ranked(source)
        assert target.collection(TENANT, "handbook").spec.chunk_tokens == 32
    finally:
        source.close()
        target.close()

    (docs / "lora.md").write_text(embedded.LORA.replace("perplejidad", "exactitud"))
    rag = embedded.make_service(data)
    rag.ingest_paths(TENANT, "handbook", [docs])
    rag.close()
    again = json.loads(
        copy("--to", "pgvector", "--to-url", database_url, "--tenant", TENANT).stdout
    )
    assert [(c["copied"], c["unchanged"]) for c in again["collections"]] == [(1, 2)]
    target = pg_service(tmp_path / "pg", database_url)
    try:
        hits = target.search(TENANT, "handbook", "exactitud", mode="lexical")
        assert [Path(h.source).name for h in hits] == ["lora.md"]
    finally:
        target.close()

    # Back to an embedded store on another node.
    back = copy(
        "--from",
        "pgvector",
        "--from-url",
        database_url,
        "--to",
        "sqlite",
        "--name",
        "handbook",
        into=tmp_path / "node",
    )
    assert back.returncode == 0, back.stderr
    source, copied = (
        pg_service(tmp_path / "pg", database_url),
        embedded.make_service(tmp_path / "node"),
    )
    try:
        assert ranked(copied) == ranked(source)
    finally:
        source.close()
        copied.close()

    missing = copy("--to", "pgvector", "--to-url", database_url, "--name", "nope")
    assert missing.returncode == 1
    assert "No collection named 'nope'" in missing.stderr
    # The target holds the name with another embedder: reported, the rest copied.
    store = PgVectorStore(
        conninfo(database_url),
        Sealer(None),
        hnsw_threshold=10_000,
        hnsw_m=16,
        ef_construction=64,
        ef_search=40,
    )
    store.create_collection(
        CollectionSpec(
            tenant="initech",
            name="handbook",
            embedder="other",
            dim=8,
            chunk_tokens=64,
            chunk_overlap=0,
        )
    )
    store.close()
    rag = embedded.make_service(data)
    rag.create_collection("initech", "handbook")
    rag.ingest_paths("initech", "handbook", [docs / "ferias.txt"])
    rag.close()
    clash = copy("--to", "pgvector", "--to-url", database_url)
    assert clash.returncode == 1
    assert "uses embedder other" in clash.stderr
    assert {c["tenant"] for c in json.loads(clash.stdout)["collections"]} == {TENANT, "globex"}


def test_a_database_outage_is_a_clear_503(tmp_path: Path, docs: Path) -> None:
    """The store's database going away mid-service: calls fail with StoreUnavailable (503
    with Retry-After over HTTP, nothing half-written), not with a driver traceback."""
    with running_postgres() as url:
        rag = pg_service(tmp_path / "data", url)
        rag.create_collection(TENANT, "handbook")
        rag.ingest_paths(TENANT, "handbook", [docs])
        assert rag.search(TENANT, "handbook", "¿Qué es LoRA?")
    for call in (
        lambda: rag.search(TENANT, "handbook", "¿Qué es LoRA?"),
        lambda: rag.collections(TENANT),
    ):
        with pytest.raises(StoreUnavailable, match="pgvector store") as caught:
            call()
        assert "\n" not in caught.value.message
        response = error_response(caught.value)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    rag.close()
