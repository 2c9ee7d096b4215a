"""Retrieval over HTTP: collections per tenant, uploads, search, grounded answers with
citations through the official openai client, and /v1/embeddings."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import Server, openai_client

MODEL = "smollm2-135m-instruct"
HANDBOOK = {
    "vacaciones.md": (
        "# Vacaciones\n\n## México\n\nEn México cada colaborador tiene 12 días de vacaciones "
        "pagadas durante su primer año de trabajo.\n\n## Colombia\n\nEn Colombia son 15 días "
        "hábiles de vacaciones por cada año trabajado.\n"
    ),
    "ferias.txt": (
        "Política de férias no Brasil: cada colaborador tem direito a 30 dias de férias por ano, "
        "que podem ser divididos em até três períodos."
    ),
    "security.html": (
        "<html><head><title>Security</title></head><body><h1>Passwords</h1><p>Passwords must "
        "be rotated every ninety days.</p></body></html>"
    ),
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(server: Server, tenant: str, role: str) -> str:
    r = httpx.post(
        server.url + "/admin/keys",
        json={"tenant": tenant, "role": role},
        headers=server.headers,
        timeout=30,
    )
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


@pytest.fixture(scope="module")
def tenant(server: Server) -> dict[str, Any]:
    """A tenant with a handbook collection, uploaded over HTTP."""
    name = "rag-" + uuid.uuid4().hex[:8]
    operator = new_key(server, name, "operator")
    user = new_key(server, name, "user")
    r = httpx.post(
        server.url + "/v1/collections",
        json={"name": "handbook", "language": "es"},
        headers=bearer(operator),
        timeout=30,
    )
    assert r.status_code == 201, r.text
    files = [("files", (n, text.encode(), "text/plain")) for n, text in HANDBOOK.items()]
    files.append(("files", ("broken.pdf", b"%PDF-1.4 not really", "application/pdf")))
    files.append(("files", ("empty.txt", b"", "text/plain")))
    r = httpx.post(
        server.url + "/v1/collections/handbook/documents",
        files=files,
        headers=bearer(operator),
        timeout=120,
    )
    assert r.status_code == 200, r.text
    return {"name": name, "operator": operator, "user": user, "report": r.json()}


def test_upload_reports_per_file(tenant: dict[str, Any]) -> None:
    report = tenant["report"]
    assert report["added"] == 3 and report["chunks"] >= 3
    failed = {f["source"]: f["error"] for f in report["failed"]}
    assert set(failed) == {"broken.pdf", "empty.txt"}
    assert failed["broken.pdf"].startswith("broken.pdf: cannot read PDF")


def test_uploads_keep_their_folders(server: Server) -> None:
    """Two files named alike in different folders are two documents; paths that try to
    leave their folder are reduced to a plain relative name."""
    operator = new_key(server, "up-" + uuid.uuid4().hex[:8], "operator")
    r = httpx.post(
        server.url + "/v1/collections",
        json={"name": "notes", "language": "es"},
        headers=bearer(operator),
        timeout=30,
    )
    assert r.status_code == 201, r.text
    files = [
        ("files", ("equipo-a/notas.txt", "El equipo A se reúne los lunes.".encode(), "text/plain")),
        (
            "files",
            ("equipo-b/notas.txt", "El equipo B se reúne los jueves.".encode(), "text/plain"),
        ),
        ("files", ("../../etc/C:/otras.txt", b"Las otras notas del mes.", "text/plain")),
    ]
    r = httpx.post(
        server.url + "/v1/collections/notes/documents",
        files=files,
        headers=bearer(operator),
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 3
    listed = httpx.get(
        server.url + "/v1/collections/notes/documents", headers=bearer(operator), timeout=30
    )
    sources = sorted(d["source"] for d in listed.json()["data"])
    assert sources == ["equipo-a/notas.txt", "equipo-b/notas.txt", "etc/otras.txt"]


def test_an_oversize_file_fails_alone(server: Server) -> None:
    """A file past the per-file limit (50 MB by default) is reported in the upload's
    report; the other files of the same upload are ingested."""
    operator = new_key(server, "big-" + uuid.uuid4().hex[:8], "operator")
    r = httpx.post(
        server.url + "/v1/collections", json={"name": "big"}, headers=bearer(operator), timeout=30
    )
    assert r.status_code == 201, r.text
    files = [
        ("files", ("small.txt", b"Las reuniones de planificacion son los martes.", "text/plain")),
        ("files", ("huge.txt", b"a" * (50 * 1024 * 1024 + 1), "text/plain")),
    ]
    r = httpx.post(
        server.url + "/v1/collections/big/documents",
        files=files,
        headers=bearer(operator),
        timeout=300,
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["added"] == 1
    ((failed,),) = [[f for f in report["failed"] if f["source"] == "huge.txt"]]
    assert "larger than the 50" in failed["error"]


def test_deleting_a_document_removes_it_from_every_retriever(server: Server) -> None:
    operator = new_key(server, "del-" + uuid.uuid4().hex[:8], "operator")
    headers = bearer(operator)
    r = httpx.post(
        server.url + "/v1/collections", json={"name": "notes"}, headers=headers, timeout=30
    )
    assert r.status_code == 201, r.text
    files = [
        (
            "files",
            ("turnos.txt", "El turno de guardia del sábado es de Ana.".encode(), "text/plain"),
        ),
        (
            "files",
            ("comida.txt", b"El almuerzo del viernes es en la terraza.", "text/plain"),
        ),
    ]
    r = httpx.post(
        server.url + "/v1/collections/notes/documents", files=files, headers=headers, timeout=120
    )
    assert r.status_code == 200 and r.json()["added"] == 2, r.text

    def sources(mode: str) -> list[str]:
        r = httpx.post(
            server.url + "/v1/collections/notes/search",
            json={"query": "turno de guardia del sábado", "mode": mode, "top_k": 5},
            headers=headers,
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return [hit["source"] for hit in r.json()["data"]]

    assert all(sources(mode)[0] == "turnos.txt" for mode in ("lexical", "dense", "hybrid"))
    listed = httpx.get(
        server.url + "/v1/collections/notes/documents", headers=headers, timeout=30
    ).json()["data"]
    (doc,) = [d for d in listed if d["source"] == "turnos.txt"]
    r = httpx.delete(
        server.url + f"/v1/collections/notes/documents/{doc['id']}", headers=headers, timeout=60
    )
    assert r.status_code == 200, r.text
    assert all("turnos.txt" not in sources(mode) for mode in ("lexical", "dense", "hybrid"))
    listed = httpx.get(
        server.url + "/v1/collections/notes/documents", headers=headers, timeout=30
    ).json()["data"]
    assert [d["source"] for d in listed] == ["comida.txt"]
    r = httpx.delete(
        server.url + f"/v1/collections/notes/documents/{doc['id']}", headers=headers, timeout=60
    )
    assert r.status_code == 404


def test_search_modes(server: Server, tenant: dict[str, Any]) -> None:
    def search(query: str, **body: Any) -> list[dict[str, Any]]:
        r = httpx.post(
            server.url + "/v1/collections/handbook/search",
            json={"query": query} | body,
            headers=bearer(tenant["user"]),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        hits: list[dict[str, Any]] = r.json()["data"]
        return hits

    lexical = search("politica de ferias", mode="lexical")
    assert lexical[0]["source"] == "ferias.txt"
    assert lexical[0]["retrievers"] == ["lexical"]
    dense = search("¿Cada cuánto hay que cambiar la contraseña?", mode="dense")
    assert dense[0]["source"] == "security.html"
    hybrid = search("días de vacaciones en Colombia", top_k=2)
    assert hybrid[0]["heading"] == "Vacaciones > Colombia"
    assert set(hybrid[0]) >= {"text", "source", "title", "chunk_id", "score", "retrievers"}


def test_roles_and_tenant_isolation(server: Server, tenant: dict[str, Any]) -> None:
    r = httpx.post(
        server.url + "/v1/collections",
        json={"name": "mine"},
        headers=bearer(tenant["user"]),
        timeout=30,
    )
    assert r.status_code == 403
    other = new_key(server, "rag-other-" + uuid.uuid4().hex[:6], "operator")
    for method, path, body in (
        ("GET", "/v1/collections/handbook", None),
        ("GET", "/v1/collections/handbook/documents", None),
        ("POST", "/v1/collections/handbook/search", {"query": "vacaciones"}),
        ("POST", "/v1/collections/handbook/ask", {"question": "vacaciones"}),
        ("DELETE", "/v1/collections/handbook", None),
    ):
        r = httpx.request(method, server.url + path, json=body, headers=bearer(other), timeout=60)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "collection_not_found"
    # Its documents can be neither replaced nor deleted from another tenant, nor listed by
    # naming the tenant, in the query or in a smuggled header.
    (doc, *_) = httpx.get(
        server.url + "/v1/collections/handbook/documents",
        headers=bearer(tenant["user"]),
        timeout=30,
    ).json()["data"]
    r = httpx.post(
        server.url + "/v1/collections/handbook/documents",
        files=[("files", (doc["source"], b"replaced", "text/plain"))],
        headers=bearer(other),
        timeout=60,
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "collection_not_found"
    r = httpx.delete(
        server.url + f"/v1/collections/handbook/documents/{doc['id']}",
        headers=bearer(other),
        timeout=60,
    )
    assert r.status_code == 404
    r = httpx.get(
        server.url + "/v1/collections",
        params={"tenant": tenant["name"]},
        headers=bearer(other),
        timeout=30,
    )
    assert r.status_code == 403
    listed = httpx.get(
        server.url + "/v1/collections",
        headers=bearer(other) | {"x-tenant": tenant["name"], "x-genaiops-tenant": tenant["name"]},
        timeout=30,
    )
    assert listed.json()["data"] == []
    still = httpx.get(
        server.url + "/v1/collections/handbook/documents",
        headers=bearer(tenant["user"]),
        timeout=30,
    ).json()["data"]
    assert doc in still
    mine = httpx.get(server.url + "/v1/collections", headers=bearer(tenant["user"]), timeout=30)
    assert [c["name"] for c in mine.json()["data"]] == ["handbook"]
    # The other tenant can have its own collection of the same name.
    r = httpx.post(
        server.url + "/v1/collections", json={"name": "handbook"}, headers=bearer(other), timeout=30
    )
    assert r.status_code == 201
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "vacaciones"}],
            "rag": {"collection": "handbook"},
        },
        headers=bearer(other),
        timeout=60,
    )
    assert r.json()["citations"] == []  # its own, empty collection: nothing found


def test_chat_with_rag_cites_real_chunks(server: Server, tenant: dict[str, Any]) -> None:
    client = openai_client(server.base_url, tenant["user"])
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "¿Cuántos días de vacaciones hay en Colombia?"}],
        max_tokens=40,
        temperature=0,
        extra_body={"rag": {"collection": "handbook", "top_k": 3}},
    )
    data = reply.model_dump()
    citations = data["citations"]
    assert citations and citations[0]["index"] == 1
    assert reply.choices[0].message.content
    documents = httpx.get(
        server.url + "/v1/collections/handbook/documents",
        headers=bearer(tenant["user"]),
        timeout=30,
    ).json()["data"]
    by_id = {d["id"]: d for d in documents}
    for citation in citations:
        document = by_id[citation["document_id"]]
        assert document["source"] == citation["source"]
        search = httpx.post(
            server.url + "/v1/collections/handbook/search",
            json={"query": citation["snippet"], "top_k": 10, "mode": "lexical"},
            headers=bearer(tenant["user"]),
            timeout=60,
        ).json()["data"]
        chunk = next(h for h in search if h["chunk_id"] == citation["chunk_id"])
        assert " ".join(chunk["text"].split()).startswith(citation["snippet"].rstrip("…"))
    assert citations[0]["source"] == "vacaciones.md"
    # The model saw the sources: its prompt is far longer than the question alone.
    assert reply.usage is not None and reply.usage.prompt_tokens > 60


def test_streamed_answer_has_citations_in_its_last_chunk(
    server: Server, tenant: dict[str, Any]
) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Política de férias no Brasil"}],
        "max_tokens": 20,
        "stream": True,
        "rag": {"collection": "handbook"},
    }
    chunks = []
    with httpx.stream(
        "POST",
        server.url + "/v1/chat/completions",
        json=body,
        headers=bearer(tenant["user"]),
        timeout=60,
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                chunks.append(json.loads(line[6:]))
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishing) == 1
    assert finishing[0]["citations"][0]["source"] == "ferias.txt"
    assert all("citations" not in c for c in chunks if c is not finishing[0])


def test_streamed_not_found_answer_has_empty_citations(
    server: Server, tenant: dict[str, Any]
) -> None:
    """Like the JSON answer, a streamed answer from a collection with nothing relevant
    says that no source was cited: ``citations: []`` in its finishing chunk."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is the boiling point of mercury?"}],
        "stream": True,
        "rag": {"collection": "handbook"},
    }
    with httpx.stream(
        "POST",
        server.url + "/v1/chat/completions",
        json=body,
        headers=bearer(tenant["user"]),
        timeout=60,
    ) as r:
        chunks = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("I could not find")
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishing) == 1 and finishing[0]["citations"] == []


def test_nothing_relevant_says_so(server: Server, tenant: dict[str, Any]) -> None:
    for question, expected in (
        ("¿Cuál es la capital de Mongolia?", "No encontré información"),
        ("What is the boiling point of mercury?", "I could not find"),
        ("Qual é a capital da Mongólia?", "Não encontrei"),
    ):
        r = httpx.post(
            server.url + "/v1/collections/handbook/ask",
            json={"question": question},
            headers=bearer(tenant["user"]),
            timeout=60,
        )
        answer = r.json()
        assert answer["answer"].startswith(expected), answer
        assert answer["citations"] == [] and answer["usage"]["total_tokens"] == 0


def test_nothing_relevant_with_a_response_format_is_a_refusal(
    server: Server, tenant: dict[str, Any]
) -> None:
    """No JSON can be built from nothing: the not-found text is the message's refusal,
    not content a JSON parser would choke on, and the model is not asked without sources."""
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={
            "model": "smollm2-135m-instruct",
            "messages": [{"role": "user", "content": "What is the boiling point of mercury?"}],
            "response_format": {"type": "json_object"},
            "rag": {"collection": "handbook"},
        },
        headers=bearer(tenant["user"]),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    message = answer["choices"][0]["message"]
    assert message["content"] is None
    assert message["refusal"].startswith("I could not find")
    assert answer["citations"] == [] and answer["usage"]["total_tokens"] == 0


def test_no_source_fitting_the_context_window_is_not_found(
    server: Server, tenant: dict[str, Any]
) -> None:
    """Relevant passages exist, but an answer budget that leaves no room for any of them
    must not become an answer without sources."""
    model = "smollm2-135m-instruct"
    card = httpx.get(
        server.url + f"/v1/models/{model}", headers=bearer(tenant["user"]), timeout=30
    ).json()
    question = "¿Cuántos días de vacaciones tengo en México?"
    body = {"model": model, "messages": [{"role": "user", "content": question}]}
    body["rag"] = {"collection": "handbook"}
    found = httpx.post(
        server.url + "/v1/collections/handbook/search",
        json={"query": question},
        headers=bearer(tenant["user"]),
        timeout=60,
    ).json()
    assert found["data"], "the question has relevant passages"
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json=body | {"max_tokens": card["context_length"] - 40},
        headers=bearer(tenant["user"]),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["choices"][0]["message"]["content"].startswith("No encontré información")
    assert answer["citations"] == [] and answer["usage"]["total_tokens"] == 0


def test_ask_endpoint(server: Server, tenant: dict[str, Any]) -> None:
    r = httpx.post(
        server.url + "/v1/collections/handbook/ask",
        json={"question": "¿Cuántos días de vacaciones tengo en México?", "max_tokens": 30},
        headers=bearer(tenant["user"]),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["object"] == "collection.answer" and answer["answer"]
    assert answer["citations"][0]["heading"] == "Vacaciones > México"
    # Streamed, the citations come in the finishing chunk, as through chat completions.
    with httpx.stream(
        "POST",
        server.url + "/v1/collections/handbook/ask",
        json={"question": "¿Cuántos días de vacaciones tengo en México?", "stream": True},
        headers=bearer(tenant["user"]),
        timeout=60,
    ) as streamed:
        assert streamed.status_code == 200
        chunks = [json.loads(x[6:]) for x in streamed.iter_lines() if x.startswith("data: {")]
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishing) == 1
    citations = finishing[0]["citations"]
    assert citations and citations[0]["heading"] == "Vacaciones > México"


def test_system_admin_answers_from_a_named_tenant(server: Server, tenant: dict[str, Any]) -> None:
    """?tenant= on /ask and "tenant" in the rag option: the system administrator's way to
    another tenant's collection; anyone else naming another tenant is refused (403)."""
    question = "¿Cuántos días de vacaciones tengo en México?"
    r = httpx.post(
        server.url + f"/v1/collections/handbook/ask?tenant={tenant['name']}",
        json={"question": question, "max_tokens": 20},
        headers=server.headers,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["citations"][0]["heading"] == "Vacaciones > México"
    rag = {"collection": "handbook", "tenant": tenant["name"]}
    body = {"model": MODEL, "messages": [{"role": "user", "content": question}], "rag": rag}
    body["max_tokens"] = 20
    r = httpx.post(
        server.url + "/v1/chat/completions", json=body, headers=server.headers, timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.json()["citations"][0]["heading"] == "Vacaciones > México"
    other = new_key(server, "rag-named-" + uuid.uuid4().hex[:6], "user")
    r = httpx.post(
        server.url + f"/v1/collections/handbook/ask?tenant={tenant['name']}",
        json={"question": question},
        headers=bearer(other),
        timeout=60,
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_tenant"
    r = httpx.post(
        server.url + "/v1/chat/completions", json=body, headers=bearer(other), timeout=60
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_tenant"


def test_bad_rag_options_are_400(server: Server, tenant: dict[str, Any]) -> None:
    for rag, param in (
        ({"top_k": 3}, "rag.collection"),
        ({"collection": "handbook", "top_k": 0}, "rag.top_k"),
        ("handbook", "rag"),  # not an object at all: the option itself, not "rag."
        ({"collection": "handbook", "top_k": "2"}, "rag.top_k"),  # a string is no number
    ):
        r = httpx.post(
            server.url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "rag": rag},
            headers=bearer(tenant["user"]),
            timeout=30,
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param


def test_embeddings_endpoint(server: Server, tenant: dict[str, Any]) -> None:
    client = openai_client(server.base_url, tenant["user"])
    result = client.embeddings.create(
        model="use-multilingual", input=["perro", "cachorro", "dog", "impuestos"]
    )
    vectors = np.array([d.embedding for d in result.data])
    assert vectors.shape == (4, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    similar, unrelated = vectors[0] @ vectors[2], vectors[0] @ vectors[3]
    assert similar > unrelated  # "perro" is closer to "dog" than to "impuestos"
    assert result.usage.prompt_tokens > 0
    short = client.embeddings.create(
        model="use-multilingual", input="hola", dimensions=64, encoding_format="base64"
    )
    raw = base64.b64decode(short.data[0].embedding)  # type: ignore[arg-type]
    assert len(raw) == 64 * 4
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="nope", input="hola")
    assert missing.value.code == "model_not_found" and "use-multilingual" in missing.value.message
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="use-multilingual", input=[])
    # Token arrays (what LangChain sends by default) are refused with the way out.
    with pytest.raises(openai.BadRequestError) as tokens:
        client.embeddings.create(model="use-multilingual", input=[[9906, 1917]])
    assert "check_embedding_ctx_length=False" in tokens.value.message
    client.close()
    # JSON types are strict, as OpenAI's are: true is not 1, "64" is not 64.
    for body, param in (
        ({"input": "hola", "dimensions": True}, "dimensions"),
        ({"input": "hola", "dimensions": "64"}, "dimensions"),
    ):
        r = httpx.post(
            server.url + "/v1/embeddings", json=body, headers=bearer(tenant["user"]), timeout=30
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    for body, param in (({"query": "LoRA", "top_k": "3"}, "top_k"), ({"query": 5}, "query")):
        r = httpx.post(
            server.url + "/v1/collections/handbook/search",
            json=body,
            headers=bearer(tenant["user"]),
            timeout=30,
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_remote_embedder_over_another_gateway(
    server: Server, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An embedder that is some other OpenAI-compatible /v1/embeddings (here: the session
    server), with its key from the environment; vectors match the local model's."""
    from genaiops.config import load_settings
    from genaiops.rag.service import RagService

    monkeypatch.setenv("GENAIOPS_TEST_EMBED_KEY", server.key or "")
    remote = {
        "name": "gateway-use",
        "kind": "remote",
        "base_url": server.base_url,
        "model": "use-multilingual",
        "api_key_env": "GENAIOPS_TEST_EMBED_KEY",
        "dim": 512,
        "batch_size": 2,
    }
    # Without a configured dim, the first collection learns it from one probe request.
    undeclared = {k: v for k, v in remote.items() if k != "dim"} | {"name": "gateway-nodim"}
    rag = RagService(load_settings(data_dir=tmp_path, rag={"embedders": [remote, undeclared]}))
    try:
        assert rag.create_collection("acme", "learnt", embedder="gateway-nodim").spec.dim == 512
        texts = ["cachorro", "perro", "dog"]
        local = rag.embed("use-multilingual", texts)
        assert np.allclose(rag.embed("gateway-use", texts), local, atol=1e-5)
        rag.create_collection("acme", "remote", embedder="gateway-use")
        doc = tmp_path / "ferias.txt"
        doc.write_text(HANDBOOK["ferias.txt"], encoding="utf-8")
        rag.ingest_paths("acme", "remote", [doc])
        hits = rag.search("acme", "remote", "vacation days in Brazil", mode="dense")
        assert hits[0].source == str(doc)
    finally:
        rag.close()
    monkeypatch.setenv("GENAIOPS_TEST_EMBED_KEY", "wrong")
    rag = RagService(load_settings(data_dir=tmp_path, rag={"embedders": [remote]}))
    try:
        with pytest.raises(Exception, match="answered 401"):
            rag.embed("gateway-use", ["x"])
    finally:
        rag.close()


def test_sources_are_fitted_into_a_small_context_window(
    server: Server, tenant: dict[str, Any]
) -> None:
    operator = bearer(tenant["operator"])
    r = httpx.post(
        server.url + "/v1/collections", json={"name": "long"}, headers=operator, timeout=30
    )
    assert r.status_code == 201
    paragraph = (
        "El reembolso de gastos de viaje requiere factura original, aprobación del gerente "
        "y registro en el sistema dentro de los treinta días siguientes al viaje. "
    )
    files = [
        ("files", (f"viajes-{i}.txt", (f"Norma {i}. " + paragraph * 8).encode(), "text/plain"))
        for i in range(6)
    ]
    r = httpx.post(
        server.url + "/v1/collections/long/documents", files=files, headers=operator, timeout=120
    )
    assert r.json()["added"] == 6
    # local-gguf has a 512-token context window: not every source fits.
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={
            "model": "local-gguf",
            "messages": [{"role": "user", "content": "¿Qué requiere el reembolso de gastos?"}],
            "max_tokens": 32,
            "rag": {"collection": "long", "top_k": 6},
        },
        headers=bearer(tenant["user"]),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert 1 <= len(answer["citations"]) < 6
    assert answer["usage"]["prompt_tokens"] + 32 <= 512


def test_collection_changes_are_audited(server: Server, tenant: dict[str, Any]) -> None:
    records = httpx.get(
        server.url + "/admin/audit",
        params={"tenant": tenant["name"], "limit": 1000},
        headers=server.headers,
        timeout=30,
    ).json()["data"]
    events = {r["event"]: r for r in records if r["detail"].get("collection") == "handbook"}
    # The actor is the operator's key id, never the key itself.
    actor = events["collection.created"]["actor"]
    assert len(actor) == 12 and tenant["operator"].startswith(f"gaiops_{actor}_")
    ingested = events["documents.ingested"]["detail"]
    assert ingested["added"] == 3 and ingested["failed"] == 2
    assert "broken.pdf" in ingested["files"]


def test_answers_report_groundedness(server: Server, tenant: dict[str, Any]) -> None:
    r = httpx.post(
        server.url + "/v1/collections/handbook/ask",
        json={"question": "¿Cuántos días de vacaciones hay en Colombia?", "max_tokens": 40},
        headers=bearer(tenant["user"]),
        timeout=60,
    )
    grounded = r.json()["groundedness"]
    assert 0.0 <= grounded["score"] <= 1.0
    assert grounded["supported"] <= grounded["sentences"]
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Política de férias no Brasil"}],
        "max_tokens": 30,
        "stream": True,
        "rag": {"collection": "handbook"},
    }
    with httpx.stream(
        "POST",
        server.url + "/v1/chat/completions",
        json=body,
        headers=bearer(tenant["user"]),
        timeout=60,
    ) as stream:
        chunks = [json.loads(x[6:]) for x in stream.iter_lines() if x.startswith("data: {")]
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert "score" in finishing[0]["groundedness"]


def test_upload_metadata_tags_documents_for_filters(server: Server, tenant: dict[str, Any]) -> None:
    operator = bearer(tenant["operator"])
    r = httpx.post(
        server.url + "/v1/collections", json={"name": "tagged"}, headers=operator, timeout=30
    )
    assert r.status_code == 201, r.text

    def upload(name: str, text: str, **form: str) -> httpx.Response:
        return httpx.post(
            server.url + "/v1/collections/tagged/documents",
            files=[("files", (name, text.encode(), "text/plain"))],
            data=form,
            headers=operator,
            timeout=120,
        )

    r = upload(
        "nda.txt",
        "El acuerdo de confidencialidad vence en marzo.",
        metadata='{"team": "legal", "year": 2025}',
    )
    assert r.status_code == 200 and r.json()["added"] == 1, r.text
    r = upload("menu.txt", "El acuerdo con la cafetería vence en abril.")
    assert r.json()["added"] == 1

    def search(**filters: Any) -> list[dict[str, Any]]:
        r = httpx.post(
            server.url + "/v1/collections/tagged/search",
            json={"query": "acuerdo vence", "filters": filters},
            headers=bearer(tenant["user"]),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        hits: list[dict[str, Any]] = r.json()["data"]
        return hits

    assert len(search()) == 2
    [hit] = search(team="legal")
    assert hit["source"] == "nda.txt" and hit["metadata"] == {"team": "legal", "year": 2025}
    assert search(team="legal", year=2024) == []
    # Operators over HTTP: a range, and "not legal" keeps the document with no team.
    [hit] = search(year={"$gte": 2020, "$lt": 2030})
    assert hit["source"] == "nda.txt"
    [hit] = search(team={"$ne": "legal"})
    assert hit["source"] == "menu.txt"
    r = httpx.post(
        server.url + "/v1/collections/tagged/search",
        json={"query": "acuerdo", "filters": {"year": {"$between": [1, 2]}}},
        headers=bearer(tenant["user"]),
        timeout=60,
    )
    assert r.status_code == 400 and "unknown operator '$between'" in r.json()["error"]["message"]

    for bad, message in [
        ('{"source": "x"}', "metadata key 'source' is reserved"),
        ('["team"]', "metadata must be a JSON object"),
        ("team=legal", "metadata must be a JSON object"),
        ('{"team": {"a": 1}}', "must be a string, number or boolean"),
        ('{"a":' * 50_000 + "1" + "}" * 50_000, "metadata must be a JSON object"),  # too deep
    ]:
        r = upload("nda.txt", "texto", metadata=bad)
        assert r.status_code == 400, r.text
        assert message in r.json()["error"]["message"]
        assert r.json()["error"]["param"] == "metadata"
