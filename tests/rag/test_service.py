"""RagService on a real data directory: real embedders, real SQLite + FTS5, real FAISS."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genaiops.config import load_settings
from genaiops.errors import InvalidRequest, NotFound
from genaiops.rag.crypto import FINGERPRINT, Sealer
from genaiops.rag.loaders import load_file
from genaiops.rag.service import RagService

TENANT = "acme"

LORA = """# Guía de ajuste fino

## ¿Qué es LoRA?

LoRA es una técnica de ajuste fino que congela los pesos del modelo base y entrena
matrices de rango bajo. Reduce la memoria y permite servir varios adaptadores.

## Evaluación

La perplejidad mide qué tan bien un modelo predice un conjunto de validación reservado.
"""
FERIAS = (
    "Política de férias: cada colaborador tem direito a 30 dias de férias por ano, "
    "que podem ser divididos em até três períodos, com pedido feito 30 dias antes."
)
SECURITY = """<html><head><title>Security handbook</title><script>var x = 1;</script></head>
<body><h1>Passwords</h1><p>Passwords must be rotated every ninety days and never shared
with colleagues.</p><h2>Laptops</h2><p>Laptops must use full-disk encryption.</p></body></html>
"""
FAQ = (
    '{"id": "1", "q": "¿Cómo pido reembolso de gastos?", "lang": "es"}\n'
    '{"id": "2", "q": "Expense reports are due on the fifth business day.", "lang": "en"}\n'
)


def make_service(tmp: Path, **rag: Any) -> RagService:
    overrides: dict[str, Any] = {"rag": rag} if rag else {}
    return RagService(load_settings(data_dir=tmp, **overrides))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "lora.md").write_text(LORA, encoding="utf-8")
    (root / "ferias.txt").write_text(FERIAS, encoding="utf-8")
    (root / "sub" / "security.html").write_text(SECURITY, encoding="utf-8")
    return root


@pytest.fixture
def rag(tmp_path: Path) -> Iterator[RagService]:
    service = make_service(tmp_path / "data")
    service.create_collection(TENANT, "handbook")
    yield service
    service.close()


def sources(hits: list[Any]) -> list[str]:
    return [Path(h.source).name for h in hits]


def test_collections_are_validated_and_scoped(rag: RagService) -> None:
    for bad in ("Handbook", "../x", "a b", ""):
        with pytest.raises(InvalidRequest):
            rag.create_collection(TENANT, bad)
    with pytest.raises(InvalidRequest, match="already exists"):
        rag.create_collection(TENANT, "handbook")
    with pytest.raises(InvalidRequest, match="unknown embedder"):
        rag.create_collection(TENANT, "x", embedder="nope")
    with pytest.raises(InvalidRequest, match="chunk_tokens"):
        rag.create_collection(TENANT, "y", chunk_tokens=8)
    # The same name in another tenant is another collection.
    rag.create_collection("globex", "handbook")
    assert [c.spec.tenant for c in rag.collections(None)] == ["acme", "globex"]
    with pytest.raises(NotFound):
        rag.collection("initech", "handbook")


def test_an_ingest_never_writes_into_the_collection_that_took_its_place(
    rag: RagService, docs: Path
) -> None:
    # An ingest holds its collection while another request deletes it and a tenant
    # creates the next one, which SQLite gives the same row id.
    held = rag.create_collection(TENANT, "payroll")
    rag.delete_collection(TENANT, "payroll")
    other = rag.create_collection("globex", "victim")
    assert other.id == held.id
    with pytest.raises(NotFound, match="deleted"):
        rag.ingest(held, [("lora.md", lambda: load_file(docs / "lora.md"))])
    assert rag.documents("globex", "victim") == []
    assert rag.search("globex", "victim", "LoRA", mode="lexical") == []


def test_lexical_search_finds_the_other_number_of_a_word(rag: RagService, tmp_path: Path) -> None:
    folder = tmp_path / "numbers"
    folder.mkdir()
    (folder / "es.txt").write_text("Las vacaciones se piden en todas las ciudades.")
    (folder / "pt.txt").write_text("As ações e opções da empresa; viagens e hospitais.")
    (folder / "en.txt").write_text("Read the travel policies before booking.")
    rag.ingest_paths(TENANT, "handbook", [folder])
    for query, source in [
        ("vacación", "es.txt"), ("ciudad", "es.txt"), ("ação", "pt.txt"), ("opção", "pt.txt"),
        ("viagem", "pt.txt"), ("hospital", "pt.txt"), ("policy", "en.txt"),
    ]:  # fmt: skip
        assert sources(rag.search(TENANT, "handbook", query, mode="lexical")) == [source], query
    # And the other way round: a plural query finds the singular.
    (folder / "es.txt").write_text("Pide tu vacación en la ciudad.")
    rag.ingest_paths(TENANT, "handbook", [folder])
    hits = rag.search(TENANT, "handbook", "vacaciones ciudades", mode="lexical")
    assert sources(hits) == ["es.txt"]


def test_a_file_name_that_is_not_utf8_is_one_failed_file(rag: RagService, tmp_path: Path) -> None:
    import os

    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "a.txt").write_text("Primer documento del manual.")
    with open(os.path.join(os.fsencode(folder), b"m\xff.txt"), "w") as f:
        f.write("Un nombre de archivo en latin-1.")
    (folder / "z.txt").write_text("Último documento del manual.")
    report = rag.ingest_paths(TENANT, "handbook", [folder])
    assert report.added == 2
    (failure,) = report.failed
    assert "not valid UTF-8" in failure["error"] and failure["source"].endswith("m\ufffd.txt")


def test_ingest_search_update_and_delete(rag: RagService, docs: Path) -> None:
    report = rag.ingest_paths(TENANT, "handbook", [docs])
    assert (report.documents, report.added, report.failed) == (3, 3, [])
    assert report.chunks >= 3 and report.embedded == report.chunks

    again = rag.ingest_paths(TENANT, "handbook", [docs])
    assert (again.unchanged, again.added, again.embedded) == (3, 0, 0)

    hits = rag.search(TENANT, "handbook", "politica de ferias", mode="lexical")
    assert sources(hits)[0] == "ferias.txt"  # accents folded
    hits = rag.search(TENANT, "handbook", "How often do I change my password?", mode="dense")
    assert sources(hits)[0] == "security.html"
    hits = rag.search(TENANT, "handbook", "¿Qué es LoRA?", top_k=3)
    assert sources(hits)[0] == "lora.md"
    assert hits[0].heading == "Guía de ajuste fino > ¿Qué es LoRA?"
    assert set(hits[0].retrievers) == {"lexical", "dense"}
    assert hits[0].ranks == {"lexical": 1, "dense": 1}

    # A changed file replaces its chunks; unchanged chunks keep their vectors, and the
    # document keeps its id.
    ids = {d.source: d.id for d in rag.documents(TENANT, "handbook")}
    (docs / "lora.md").write_text(LORA.replace("perplejidad", "exactitud"), encoding="utf-8")
    changed = rag.ingest_paths(TENANT, "handbook", [docs])
    assert {d.source: d.id for d in rag.documents(TENANT, "handbook")} == ids
    assert (changed.updated, changed.unchanged) == (1, 2)
    assert changed.reused >= 1 and changed.embedded >= 1
    assert rag.search(TENANT, "handbook", "perplejidad", mode="lexical") == []
    assert sources(rag.search(TENANT, "handbook", "exactitud", mode="lexical")) == ["lora.md"]

    collection = rag.collection(TENANT, "handbook")
    assert collection.documents == 3
    security = next(d for d in rag.documents(TENANT, "handbook") if d.kind == "html")
    assert security.title == "Security handbook"
    rag.delete_document(TENANT, "handbook", security.id)
    for mode in ("lexical", "dense", "hybrid"):
        hits = rag.search(TENANT, "handbook", "passwords rotated laptops", mode=mode)  # type: ignore[arg-type]
        assert "security.html" not in sources(hits), mode
    with pytest.raises(NotFound):
        rag.delete_document(TENANT, "handbook", security.id)


def test_the_same_files_named_another_way_are_the_same_documents(
    rag: RagService, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = rag.ingest_paths(TENANT, "handbook", [docs])
    assert first.added == first.documents > 0
    # Relative to another working directory, with a detour: still the same files.
    monkeypatch.chdir(docs.parent)
    again = rag.ingest_paths(TENANT, "handbook", [Path(docs.name) / "sub" / ".."])
    assert (again.added, again.unchanged) == (0, first.documents)
    assert len(rag.documents(TENANT, "handbook")) == first.documents


def test_rows_metadata_and_filters(rag: RagService, tmp_path: Path) -> None:
    faq = tmp_path / "faq.jsonl"
    faq.write_text(FAQ, encoding="utf-8")
    report = rag.ingest_paths(
        TENANT, "handbook", [faq], text_field="q", id_field="id", metadata_fields=["lang"]
    )
    assert report.added == 2
    everything = rag.search(TENANT, "handbook", "expense reimbursement", top_k=5)
    assert len(everything) == 2
    only_en = rag.search(TENANT, "handbook", "gastos", top_k=5, filters={"lang": "en"})
    assert [h.metadata["lang"] for h in only_en] == ["en"]
    assert only_en[0].locator == "2"
    both = rag.search(TENANT, "handbook", "gastos", filters={"lang": ["en", "es"]})
    assert len(both) == 2
    assert rag.search(TENANT, "handbook", "gastos", filters={"kind": "pdf"}) == []
    with pytest.raises(InvalidRequest):
        rag.search(TENANT, "handbook", "gastos", filters={"bad field!": 1})
    # Other fields chosen from the same rows change what is stored: the rows are updated.
    again = rag.ingest_paths(TENANT, "handbook", [faq], text_field="q", id_field="id",
                             metadata_fields=["lang"])  # fmt: skip
    assert (again.unchanged, again.updated) == (2, 0)
    moved = rag.ingest_paths(TENANT, "handbook", [faq], text_field="q", id_field="id")
    assert (moved.unchanged, moved.updated, moved.embedded) == (0, 2, 0)
    hits = rag.search(TENANT, "handbook", "expense reimbursement", top_k=5)
    assert len(hits) == 2 and all("lang" not in h.metadata for h in hits)
    assert rag.search(TENANT, "handbook", "gastos", filters={"lang": "en"}) == []
    # The text is another column now: the rows hold it.
    langs = rag.ingest_paths(TENANT, "handbook", [faq], text_field="lang", id_field="id")
    assert langs.updated == 2
    texts = {h.text for h in rag.search(TENANT, "handbook", "es", top_k=5, mode="lexical")}
    assert texts == {"es"}


POLICIES = [
    {"id": "1", "q": "Política de gastos de viaje 2019", "year": 2019, "date": "2019-05-01",
     "draft": False, "team": "finanzas"},
    {"id": "2", "q": "Política de gastos de viaje 2021", "year": 2021, "date": "2021-03-10",
     "draft": True, "team": "legal"},
    {"id": "3", "q": "Política de gastos de viaje 2024", "year": "2024", "date": "2024-01-15",
     "team": "finanzas", "draft": 1},
    {"id": "4", "q": "Política de gastos de viaje 2023", "year": 2023, "date": "2023-07-20",
     "draft": False},
]  # fmt: skip


def test_operator_filters(rag: RagService, tmp_path: Path) -> None:
    """Ranges, exclusions and lists, as the LangChain/LlamaIndex stores take them; a range
    compares like with like (the "2024" kept as text is no number)."""
    rows = tmp_path / "politicas.jsonl"
    rows.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in POLICIES) + "\n")
    fields = ["year", "date", "draft", "team"]
    rag.ingest_paths(TENANT, "handbook", [rows], text_field="q", id_field="id",
                     metadata_fields=fields)  # fmt: skip

    def found(filters: dict[str, object]) -> list[str]:
        hits = rag.search(TENANT, "handbook", "politica gastos viaje", top_k=10,
                          mode="lexical", filters=filters)  # fmt: skip
        return sorted(h.locator or "" for h in hits)

    assert found({}) == ["1", "2", "3", "4"]
    assert found({"year": {"$gte": 2020}}) == ["2", "4"]
    assert found({"year": {"$gte": 2020, "$lt": 2022}}) == ["2"]
    assert found({"date": {"$gte": "2021-01-01", "$lte": "2023-12-31"}}) == ["2", "4"]
    assert found({"team": {"$ne": "legal"}}) == ["1", "3", "4"]  # no team counts as not legal
    assert found({"team": {"$nin": ["legal", "finanzas"]}}) == ["4"]
    assert found({"draft": {"$in": [True]}}) == ["2"]
    # true is not 1, false is not 0: booleans and numbers match their own kind only.
    assert found({"draft": True}) == ["2"]
    assert found({"draft": 1}) == ["3"]
    assert found({"draft": {"$ne": True}}) == ["1", "3", "4"]
    assert found({"draft": {"$nin": [1, False]}}) == ["2"]
    assert found({"draft": {"$eq": False}, "year": {"$lt": 2020}}) == ["1"]
    assert found({"year": [2019, "2024"]}) == ["1", "3"]
    assert found({"document_id": {"$gt": 0}}) == ["1", "2", "3", "4"]
    assert found({"source": {"$gt": 5}}) == []  # a number against text matches nothing
    for bad in (
        {"year": {"$foo": 1}},
        {"year": {}},
        {"year": {"$gt": True}},
        {"year": {"$in": []}},
        {"year": {"$gt": [2020]}},
        {"year": 10**20},  # past what the stores compare: a 400, not a crash
        {"year": {"$lt": -(2**63) - 1}},
        {"year": {"$in": [1, float("nan")]}},
    ):
        with pytest.raises(InvalidRequest, match="filter 'year'"):
            found(bad)
    # A column is never a boolean (both stores answer alike), and a request's filters
    # hold a bounded number of values.
    with pytest.raises(InvalidRequest, match="filter 'document_id' takes a number"):
        found({"document_id": True})
    with pytest.raises(InvalidRequest, match="at most 500 values"):
        found({"team": {"$nin": [str(i) for i in range(501)]}})


def test_bad_files_are_reported_and_skipped(rag: RagService, docs: Path) -> None:
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> garbage")
    (docs / "junk.txt").write_bytes(bytes(range(256)) * 40)
    (docs / "empty.md").write_text("")
    with (docs / "huge.txt").open("wb") as handle:  # sparse: 50 MB + 1 byte, never read
        handle.truncate(50 * 1024 * 1024 + 1)
    report = rag.ingest_paths(TENANT, "handbook", [docs])
    failed = {Path(f["source"]).name: f["error"] for f in report.failed}
    assert set(failed) == {"broken.pdf", "junk.txt", "empty.md", "huge.txt"}
    assert "larger than the 50 MB limit" in failed["huge.txt"]
    assert "cannot read PDF" in failed["broken.pdf"]
    assert "not a text file" in failed["junk.txt"]
    assert "empty" in failed["empty.md"]
    assert report.added == 3


def test_index_is_rebuilt_when_missing_or_stale(rag: RagService, docs: Path) -> None:
    rag.ingest_paths(TENANT, "handbook", [docs])
    first = rag.search(TENANT, "handbook", "full-disk encryption", mode="dense")
    index_dir = rag.settings.rag_dir() / "indexes"
    files = list(index_dir.glob("*.faiss"))
    assert files
    for path in index_dir.iterdir():
        path.unlink()
    fresh = make_service(rag.settings.data_dir)
    try:
        again = fresh.search(TENANT, "handbook", "full-disk encryption", mode="dense")
        assert [h.chunk_id for h in again] == [h.chunk_id for h in first]
        assert list(index_dir.glob("*.faiss"))
    finally:
        fresh.close()


def test_hnsw_above_the_threshold(tmp_path: Path, docs: Path) -> None:
    rag = make_service(tmp_path / "data", hnsw_threshold=2)
    try:
        rag.create_collection(TENANT, "big")
        rag.ingest_paths(TENANT, "big", [docs])
        hits = rag.search(TENANT, "big", "vacation days per year", mode="dense")
        assert sources(hits)[0] == "ferias.txt"
        collection = rag.collection(TENANT, "big")
        assert rag.store.indexes.kind(collection.uid) == "hnsw"  # type: ignore[attr-defined]
    finally:
        rag.close()


def test_minilm_reads_a_text_longer_than_its_window() -> None:
    """MiniLM reads 256 word pieces; a longer chunk is embedded window by window, so what
    its end says still moves its vector. Short texts embed exactly as before."""
    import numpy as np

    from genaiops.rag.embedders.minilm import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder({})
    head = "Travel expenses need receipts and a manager's approval within thirty days. " * 20
    tail = "The guest wifi password is sunflower and the network is called Visitors. " * 5
    text = head + tail
    assert len(embedder._windows(text)) > 1 and len(embedder._windows(head[:200])) == 1
    query = embedder.embed(["What is the guest wifi password?"])[0]
    windowed = embedder.embed([text])[0]
    cut = embedder._model.encode([text], normalize_embeddings=True)[0]  # the first window only
    assert float(windowed @ query) > float(cut @ query) + 0.05
    assert np.isclose(np.linalg.norm(windowed), 1.0, atol=1e-5)
    short = "Passwords must be rotated every ninety days."
    plain = embedder._model.encode([short], normalize_embeddings=True)[0]
    assert np.allclose(embedder.embed([short, text])[0], plain, atol=1e-5)


def test_minilm_embedder(tmp_path: Path, docs: Path) -> None:
    rag = make_service(tmp_path / "data")
    try:
        collection = rag.create_collection(TENANT, "english", embedder="minilm")
        assert collection.spec.dim == 384
        rag.ingest_paths(TENANT, "english", [docs / "sub"])
        hits = rag.search(TENANT, "english", "disk encryption on notebooks", mode="dense")
        assert sources(hits)[0] == "security.html"
        assert rag.embed("minilm", ["a", "b"]).shape == (2, 384)
    finally:
        rag.close()


def test_encrypted_at_rest(tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("GENAIOPS_RAG_KEY", key)
    data = tmp_path / "data"
    rag = make_service(data)
    try:
        collection = rag.create_collection(TENANT, "secret")
        assert collection.encrypted
        rag.ingest_paths(TENANT, "secret", [docs])
        assert sources(rag.search(TENANT, "secret", "ferias", mode="lexical")) == ["ferias.txt"]
        assert sources(rag.search(TENANT, "secret", "password rotation", mode="dense"))[0] == (
            "security.html"
        )
        hit = rag.search(TENANT, "secret", "LoRA")[0]
        assert "rango bajo" in hit.text and hit.title == "Guía de ajuste fino"
    finally:
        rag.close()
    raw = b"".join(p.read_bytes() for p in (data / "rag").glob("rag.db*"))
    # File paths stay in clear (they identify documents); content words, titles and
    # headings must not.
    words = ("colaborador", "Passwords", "perplejidad", "adaptadores", "matrices", "ninety")
    for word in (*words, "Security handbook", "ajuste fino", "Laptops", "Evaluación"):
        assert word.encode() not in raw, word
        assert word.lower().encode() not in raw, word

    monkeypatch.setenv("GENAIOPS_RAG_KEY", base64.b64encode(os.urandom(32)).decode())
    wrong = make_service(data)
    try:
        with pytest.raises(InvalidRequest, match="encrypted"):
            wrong.search(TENANT, "secret", "ferias")
    finally:
        wrong.close()
    monkeypatch.delenv("GENAIOPS_RAG_KEY")
    missing = make_service(data)
    try:
        with pytest.raises(InvalidRequest, match="missing"):
            missing.collection(TENANT, "secret")
        # Deleting reads no text: a collection whose key was lost can still go.
        missing.delete_collection(TENANT, "secret")
        assert missing.create_collection(TENANT, "secret").encrypted is False
    finally:
        missing.close()


def test_no_stored_hash_confirms_a_guess_of_encrypted_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain SHA-256 of a short row ("salary: 52750") would let anyone holding the file
    test guesses without the key: an encrypted collection keys its hashes, and a store
    written before that is upgraded in place without embedding anything again."""
    monkeypatch.setenv("GENAIOPS_RAG_KEY", base64.b64encode(os.urandom(32)).decode())
    rows = tmp_path / "salaries.jsonl"
    rows.write_text(
        "".join(
            json.dumps(
                {"id": f"e{n}", "text": f"Salario anual de la persona {n}: {50_000 + n} euros"}
            )
            + "\n"
            for n in range(5)
        ),  # fmt: skip
        encoding="utf-8",
    )
    data = tmp_path / "data"

    def ingest() -> Any:
        rag = make_service(data)
        try:
            with contextlib.suppress(InvalidRequest):
                rag.create_collection(TENANT, "hr")
            return rag.ingest_paths(TENANT, "hr", [rows], text_field="text", id_field="id")
        finally:
            rag.close()

    def stored() -> list[str]:
        with contextlib.closing(sqlite3.connect(data / "rag" / "rag.db")) as db:
            hashes = [r[0] for r in db.execute("SELECT content_hash FROM documents")]
            return hashes + [r[0] for r in db.execute("SELECT text_hash FROM chunks")]

    # A store written by a release that kept bare digests.
    with monkeypatch.context() as old:
        old.setattr(Sealer, "fingerprint", lambda self, digest: digest)
        assert ingest().added == 5
    with contextlib.closing(sqlite3.connect(data / "rag" / "rag.db")) as db:
        db.execute("UPDATE collections SET hashes_keyed = 0")
        db.commit()
    legacy = stored()
    assert len(legacy) == 10 and all(re.fullmatch("[0-9a-f]{64}", h) for h in legacy)
    # Opened with its key, the store keys every hash once; nothing is embedded again.
    again = ingest()
    assert (again.unchanged, again.added, again.updated, again.embedded) == (5, 0, 0, 0)
    keyed = stored()
    assert all(h.startswith(FINGERPRINT) for h in keyed) and not set(keyed) & set(legacy)
    # New writes are keyed too: a changed row is re-embedded, the others are not.
    rows.write_text(rows.read_text(encoding="utf-8").replace("50003", "60003"), encoding="utf-8")
    changed = ingest()
    assert (changed.unchanged, changed.updated, changed.embedded) == (4, 1, 1)
    assert all(h.startswith(FINGERPRINT) for h in stored())


def test_store_stays_consistent(rag: RagService, docs: Path) -> None:
    rag.ingest_paths(TENANT, "handbook", [docs])
    assert_consistent(rag.settings.rag_dir() / "rag.db")


def assert_consistent(path: Path) -> None:
    """Every document's chunk count matches its chunks, and every chunk is in the FTS index."""
    with sqlite3.connect(path) as conn:
        for (cid,) in conn.execute("SELECT id FROM collections"):
            mismatched = conn.execute(
                "SELECT d.id FROM documents d WHERE d.collection_id = ? AND d.chunks !="
                " (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id)",
                (cid,),
            ).fetchall()
            assert mismatched == []
            chunks = conn.execute(
                "SELECT COUNT(*) FROM chunks WHERE collection_id = ?", (cid,)
            ).fetchone()[0]
            indexed = conn.execute(f"SELECT COUNT(*) FROM fts_{cid}").fetchone()[0]
            assert chunks == indexed
            orphans = conn.execute(
                "SELECT COUNT(*) FROM chunks c LEFT JOIN documents d ON d.id = c.document_id"
                " WHERE d.id IS NULL"
            ).fetchone()[0]
            assert orphans == 0
    conn.close()  # the context manager commits but does not close


@pytest.mark.parametrize("threshold", [2, 10_000], ids=["hnsw", "flat"])
def test_loaded_index_follows_changes_in_place(tmp_path: Path, docs: Path, threshold: int) -> None:
    rag = make_service(tmp_path / "data", hnsw_threshold=threshold)
    try:
        rag.create_collection(TENANT, "kb")
        # Enough other chunks that the changes below stay under the HNSW rebuild ratio.
        for i in range(20):
            (docs / f"filler-{i}.txt").write_text(f"Inventario del almacén {i}: cajas y palés.")
        rag.ingest_paths(TENANT, "kb", [docs])
        query = "How often must passwords be changed?"
        assert sources(rag.search(TENANT, "kb", query, mode="dense"))[0] == "security.html"
        collection = rag.collection(TENANT, "kb")
        store: Any = rag.store
        built = store.indexes._entries[collection.uid].index
        # Change one document and delete another; the loaded index is updated, not rebuilt.
        (docs / "sub" / "security.html").write_text(
            SECURITY.replace("ninety days", "thirty days"), encoding="utf-8"
        )
        rag.ingest_paths(TENANT, "kb", [docs])
        ferias = next(d for d in rag.documents(TENANT, "kb") if d.kind == "txt")
        rag.delete_document(TENANT, "kb", ferias.id)
        hits = rag.search(TENANT, "kb", query, mode="dense", top_k=10)
        assert store.indexes._entries[collection.uid].index is built
        live = {h.chunk_id for h in hits}
        assert "ferias.txt" not in sources(hits)
        assert "thirty days" in hits[0].text
        # The same answers as an index rebuilt from scratch.
        fresh = make_service(tmp_path / "data", hnsw_threshold=threshold)
        try:
            rebuilt = fresh.search(TENANT, "kb", query, mode="dense", top_k=10)
            assert {h.chunk_id for h in rebuilt} == live
        finally:
            fresh.close()
    finally:
        rag.close()


def test_a_key_set_later_leaves_plaintext_collections_in_clear(
    tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection created without a key stays in clear when a key is configured later:
    old and new chunks are read, searched and stored alike; new collections are encrypted."""
    monkeypatch.delenv("GENAIOPS_RAG_KEY", raising=False)
    data = tmp_path / "data"
    rag = make_service(data)
    try:
        rag.create_collection(TENANT, "open")
        rag.ingest_paths(TENANT, "open", [docs / "lora.md"])
    finally:
        rag.close()
    monkeypatch.setenv("GENAIOPS_RAG_KEY", base64.b64encode(os.urandom(32)).decode())
    keyed = make_service(data)
    try:
        assert not keyed.collection(TENANT, "open").encrypted
        report = keyed.ingest_paths(TENANT, "open", [docs])
        assert (report.added, report.unchanged, report.failed) == (2, 1, [])
        # Old (before the key) and new chunks: both found by BM25, both readable.
        assert sources(keyed.search(TENANT, "open", "perplejidad", mode="lexical")) == ["lora.md"]
        assert sources(keyed.search(TENANT, "open", "ferias", mode="lexical")) == ["ferias.txt"]
        for mode in ("hybrid", "dense", "lexical"):
            hits = keyed.search(TENANT, "open", "LoRA rango bajo", mode=mode, top_k=10)
            assert any("rango bajo" in h.text for h in hits), mode
        titles = {d.title for d in keyed.documents(TENANT, "open")}
        assert {"Guía de ajuste fino", "Security handbook"} <= titles
        keyed.create_collection(TENANT, "sealed")
        keyed.ingest_paths(TENANT, "sealed", [docs / "sub"])
        assert keyed.collection(TENANT, "sealed").encrypted
        hit = keyed.search(TENANT, "sealed", "rotated every ninety days", mode="lexical")[0]
        assert "ninety days" in hit.text
    finally:
        keyed.close()
    raw = b"".join(p.read_bytes() for p in (data / "rag").glob("rag.db*"))
    # The plaintext collection's new document is in clear, like its old ones.
    assert b"colaborador" in raw and b"perplejidad" in raw


def test_undecryptable_text_is_a_clear_error(
    tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAIOPS_RAG_KEY", base64.b64encode(os.urandom(32)).decode())
    rag = make_service(tmp_path / "data")
    try:
        rag.create_collection(TENANT, "secret")
        rag.ingest_paths(TENANT, "secret", [docs / "ferias.txt"])
        with sqlite3.connect(rag.settings.rag_dir() / "rag.db") as conn:
            conn.execute("UPDATE chunks SET text = X'000102030405060708090a0b0c0d0e0f10111213'")
        conn.close()
        with pytest.raises(InvalidRequest, match="cannot be decrypted") as caught:
            rag.search(TENANT, "secret", "ferias", mode="lexical")
        assert caught.value.code == "encrypted_text_unreadable"
    finally:
        rag.close()


def _keys(rag: RagService, name: str = "handbook") -> list[str]:
    return sorted(d.key for d in rag.documents(TENANT, name, 0, 1000))


def test_rows_deleted_from_a_file_leave_the_collection(rag: RagService, tmp_path: Path) -> None:
    faq = tmp_path / "faq.csv"
    faq.write_text(
        "id,q\n1,Reembolso de gastos de viaje.\n2,Vacaciones en Colombia.\n"
        "3,Contraseñas rotadas cada noventa días.\n",
        encoding="utf-8",
    )
    first = rag.ingest_paths(TENANT, "handbook", [faq], text_field="q", id_field="id")
    assert (first.added, first.removed) == (3, 0)
    # Row 2 is deleted and row 3's text emptied: both documents go, with their chunks.
    faq.write_text("id,q\n1,Reembolso de gastos de viaje.\n3,\n", encoding="utf-8")
    again = rag.ingest_paths(TENANT, "handbook", [faq], text_field="q", id_field="id")
    assert (again.unchanged, again.removed, again.failed) == (1, 2, [])
    assert _keys(rag) == [f"{faq}#1"]
    for query in ("vacaciones Colombia", "contraseñas noventa"):
        hits = rag.search(TENANT, "handbook", query, mode="lexical")
        assert [h.locator for h in hits] == [], query
    assert rag.collection(TENANT, "handbook").chunks == 1


def test_relevance_needs_more_than_a_shared_word(rag: RagService, docs: Path) -> None:
    """A question that shares one word (or only function words) with a document is about
    something else: nothing is relevant, so the answer says so. A question about the
    document keeps it."""
    rag.ingest_paths(TENANT, "handbook", [docs])

    def kept(question: str) -> list[str]:
        hits = rag.search(TENANT, "handbook", question, top_k=5)
        return [Path(h.source).name for h in rag.relevant(hits, question)]

    assert "lora.md" in kept("¿Qué es LoRA y qué matrices entrena?")
    assert "ferias.txt" in kept("Quantos dias de férias por ano tem cada colaborador?")
    assert "security.html" in kept("How often must passwords be rotated?")
    # Shares "modelo" with the LoRA guide, and only function words otherwise.
    assert kept("¿Cuál es el mejor modelo de auto eléctrico para una familia?") == []
    assert kept("What is the capital of Mongolia?") == []
    assert kept("¿Qué es? ¿Cómo es? ¿Para qué?") == []


def test_prune_deletes_only_files_gone_from_the_folder(rag: RagService, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "faq.csv").write_text("id,q\n1,Reembolso de viajes.\n2,Vacaciones.\n")
    (folder / "guia.md").write_text("# Guía\n\nContraseñas cada noventa días.\n")
    (folder / "notas.txt").write_text("Notas internas del equipo.\n")
    first = rag.ingest_paths(TENANT, "handbook", [folder], text_field="q", id_field="id")
    assert first.added == 4
    (folder / "faq.csv").unlink()
    # guia.md is left out by the filter but still exists: pruning keeps it.
    again = rag.ingest_paths(
        TENANT, "handbook", [folder], exclude=["*.md"], text_field="q", prune_under=[folder]
    )
    assert (again.removed, again.unchanged) == (2, 1)
    assert _keys(rag) == sorted([str(folder / "guia.md"), str(folder / "notas.txt")])
    assert rag.search(TENANT, "handbook", "reembolso viajes", mode="lexical") == []


def test_a_source_that_fails_to_load_deletes_nothing(rag: RagService, tmp_path: Path) -> None:
    faq = tmp_path / "faq.jsonl"
    faq.write_text(FAQ, encoding="utf-8")
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "9", "q": "Otro archivo."}\n', encoding="utf-8")
    options: dict[str, Any] = {"text_field": "q", "id_field": "id"}
    rag.ingest_paths(TENANT, "handbook", [faq, other], **options)
    faq.write_text('{"id": "1", "q": "solo uno"}\nnot json\n', encoding="utf-8")
    report = rag.ingest_paths(TENANT, "handbook", [faq], **options)
    assert report.removed == 0 and len(report.failed) == 1
    faq.write_bytes(b"\x00\x01 binary")
    report = rag.ingest_paths(TENANT, "handbook", [faq, other], **options)
    assert report.removed == 0 and "not a text file" in report.failed[0]["error"]
    faq.unlink()
    with pytest.raises(InvalidRequest, match="no such file"):
        rag.ingest_paths(TENANT, "handbook", [faq, other], **options)
    assert _keys(rag) == sorted([f"{faq}#1", f"{faq}#2", f"{other}#9"])


def _tickets_db(path: Path, rows: list[tuple[int, str]]) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS tickets (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("DELETE FROM tickets")
        conn.executemany("INSERT INTO tickets VALUES (?, ?)", rows)
    conn.close()
    return f"sqlite:///{path}"


def test_sql_rows_deleted_from_a_table_leave_the_collection(
    rag: RagService, tmp_path: Path
) -> None:
    rows = [(1, "La impresora no imprime."), (2, "El proyector no enciende.")]
    url = _tickets_db(tmp_path / "crm.db", rows)
    options: dict[str, Any] = {"table": "tickets", "text_field": "body", "id_field": "id"}
    assert rag.ingest_sql(TENANT, "handbook", url, **options).added == 2
    _tickets_db(tmp_path / "crm.db", rows[:1])
    report = rag.ingest_sql(TENANT, "handbook", url, **options)
    assert (report.unchanged, report.removed) == (1, 1)
    assert rag.search(TENANT, "handbook", "proyector enciende", mode="lexical") == []
    assert [h.locator for h in rag.search(TENANT, "handbook", "impresora")] == ["1"]
    # A table that cannot be read deletes nothing.
    broken = rag.ingest_sql(TENANT, "handbook", url, table="tickets", text_field="nope")
    assert broken.removed == 0 and broken.failed
    assert len(_keys(rag)) == 1


def test_the_same_table_in_two_databases_are_two_sources(rag: RagService, tmp_path: Path) -> None:
    one = _tickets_db(tmp_path / "one.db", [(1, "La impresora no imprime.")])
    two = _tickets_db(tmp_path / "two.db", [(1, "El proyector no enciende.")])
    options: dict[str, Any] = {"table": "tickets", "text_field": "body", "id_field": "id"}
    rag.ingest_sql(TENANT, "handbook", one, **options)
    rag.ingest_sql(TENANT, "handbook", two, **options)
    records = rag.documents(TENANT, "handbook")
    assert len(records) == 2
    assert all(re.fullmatch(r"sql:tickets@[0-9a-f]{8}", d.source) for d in records)
    assert len({d.source for d in records}) == 2
    # The password is not part of the name: a rotated password keeps the same source.
    from genaiops.rag.loaders.sql import sql_source

    assert sql_source("postgresql://u:a@h/db", table="t") == sql_source(
        "postgresql://u:b@h/db", table="t"
    )
    assert sql_source("postgresql://u:a@h/db", table="t") != sql_source(
        "postgresql://u:a@h/other", table="t"
    )


def test_documents_of_the_old_sql_name_are_replaced(rag: RagService, tmp_path: Path) -> None:
    from genaiops.rag.documents import LoadedDocument, Section

    url = _tickets_db(tmp_path / "crm.db", [(1, "La impresora no imprime.")])
    legacy = LoadedDocument(
        source="sql:tickets",
        title="tickets #1",
        sections=[Section(text="La impresora no imprime.")],
        kind="sql",
        content_hash="old",
        locator="1",
    )
    rag.ingest(rag.collection(TENANT, "handbook"), [("sql:tickets", lambda: [legacy])])
    report = rag.ingest_sql(TENANT, "handbook", url, table="tickets", text_field="body")
    assert (report.added, report.removed, report.embedded) == (1, 1, 0)
    [record] = rag.documents(TENANT, "handbook")
    assert record.source.startswith("sql:tickets@")


def test_user_metadata_tags_every_document(rag: RagService, docs: Path) -> None:
    report = rag.ingest_paths(TENANT, "handbook", [docs / "sub"], metadata={"team": "security"})
    assert report.added == 1
    rag.ingest_paths(TENANT, "handbook", [docs / "lora.md"], metadata={"team": "ml", "level": 2})
    rag.ingest_paths(TENANT, "handbook", [docs / "ferias.txt"])
    hits = rag.search(TENANT, "handbook", "passwords ferias lora", filters={"team": "ml"})
    assert {Path(h.source).name for h in hits} == {"lora.md"}
    assert hits[0].metadata == {"team": "ml", "level": 2}
    assert rag.search(TENANT, "handbook", "lora", filters={"level": 2})
    # The same file with other metadata is updated, not skipped as unchanged.
    again = rag.ingest_paths(TENANT, "handbook", [docs / "lora.md"], metadata={"team": "hr"})
    assert again.updated == 1 and again.embedded == 0
    assert rag.search(TENANT, "handbook", "lora", filters={"team": "ml"}) == []
    for bad in ({"source": "x"}, {"kind": "pdf"}, {"bad key!": 1}, {"team": [1]}, {"t": None}):
        with pytest.raises(InvalidRequest, match="metadata"):
            rag.ingest_paths(TENANT, "handbook", [docs], metadata=bad)


def test_rows_are_embedded_in_batches_across_documents(
    rag: RagService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV of many short rows is a few embedding calls, not one per row, and every row
    still gets its own vector."""
    rows = [
        f"{i};Pergunta número {i} sobre o reembolso de despesas da filial {i}?" for i in range(150)
    ]
    faq = tmp_path / "faq.csv"
    faq.write_text("id;pergunta\n" + "\n".join(rows) + "\n", encoding="utf-8")
    embedder = rag.embedders.get(rag.collection(TENANT, "handbook").spec.embedder)
    calls: list[int] = []
    real = embedder.embed

    def counted(texts: Any) -> Any:
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(embedder, "embed", counted)
    report = rag.ingest_paths(TENANT, "handbook", [faq], text_field="pergunta", id_field="id")
    assert (report.documents, report.added, report.failed) == (150, 150, [])
    assert sum(calls) == report.embedded == 150
    assert len(calls) <= 3, calls
    hits = rag.search(TENANT, "handbook", "filial 137", mode="lexical", top_k=1)
    assert hits[0].locator == "137"
    dense = rag.search(TENANT, "handbook", rows[42].split(";", 1)[1], mode="dense", top_k=1)
    assert dense[0].locator == "42"


def test_a_document_deleted_during_a_copy_is_not_copied_empty(
    rag: RagService, docs: Path, tmp_path: Path
) -> None:
    """`collections copy` of a live collection: a document deleted after the copy listed
    it is skipped (reported "deleted"), not written to the target without its text."""
    from genaiops.rag import migrate

    rag.ingest_paths(TENANT, "handbook", [docs])
    source = rag.store
    collection = rag.collection(TENANT, "handbook")
    listing = source.list_documents

    def list_then_delete(coll: Any, offset: int = 0, limit: int = 100) -> Any:
        page = listing(coll, offset, limit)
        if offset == 0:
            source.delete_document(coll, page[1].id)  # another process, just after
        return page

    source.list_documents = list_then_delete  # type: ignore[method-assign]
    target = make_service(tmp_path / "target")
    events: list[tuple[str, str]] = []
    try:
        report = migrate.copy_collections(
            source, target.store, [collection],
            lambda _kind, info: events.append((info["key"], info["outcome"])),
        )  # fmt: skip
        assert report.failed == []
        assert [outcome for _, outcome in events].count("deleted") == 1
        (copied,) = report.collections
        assert copied["copied"] == 2 and copied["documents"] == 2
        stored = target.documents(TENANT, "handbook")
        assert len(stored) == 2 and all(d.chunks > 0 for d in stored)
    finally:
        target.close()
