"""/v1/collections: collections of the caller's tenant, document upload, search and
grounded answers; /v1/embeddings (OpenAI-compatible) over the configured embedders.

Managing collections and documents needs the operator or admin role; searching, asking
and listing need inference rights. The system administrator may pass ``?tenant=``.
Handlers doing database or model work are plain functions (FastAPI's thread pool) or hand
the work to a thread, so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from genaiops.engines.base import ChatMessage, GenerationRequest, SamplingParams
from genaiops.errors import InvalidRequest, ModelNotFound
from genaiops.gateway.pipeline import new_request_id
from genaiops.rag.chunking import count_tokens
from genaiops.rag.service import RagService
from genaiops.server.chunks import ChunkStream, usage
from genaiops.server.deps import (
    CollectionsManagerDep,
    ContextDep,
    GatewayDep,
    InferenceDep,
    RagDep,
    SecurityDep,
    TenantQuery,
    audit,
    owner_tenant,
)
from genaiops.server.protocol import (
    AskRequest,
    CollectionCreate,
    EmbeddingRequest,
    ErrorResponse,
    SearchRequest,
)
from genaiops.server.requests import JSONRoute
from genaiops.server.routes.openai import start
from genaiops.server.streaming import ClientDisconnected, SSEResponse, until_disconnect

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 429, 502, 504)
}
router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["retrieval"], responses=ERRORS)


@router.post("/collections", status_code=201)
def create_collection(
    body: CollectionCreate,
    principal: CollectionsManagerDep,
    rag: RagDep,
    security: SecurityDep,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    owner = owner_tenant(principal, tenant)
    collection = rag.create_collection(
        owner,
        body.name,
        embedder=body.embedder,
        chunk_tokens=body.chunk_tokens,
        chunk_overlap=body.chunk_overlap,
        language=body.language,
        description=body.description,
    )
    audit(security, "collection.created", principal, owner, collection=body.name)
    return collection.public()


@router.get("/collections")
def list_collections(principal: InferenceDep, rag: RagDep, tenant: TenantQuery = None) -> Any:
    scope = principal.scope(tenant)
    return {"object": "list", "data": [c.public() for c in rag.collections(scope)]}


@router.get("/collections/{name}")
def get_collection(
    name: str, principal: InferenceDep, rag: RagDep, tenant: TenantQuery = None
) -> dict[str, Any]:
    return rag.collection(owner_tenant(principal, tenant), name).public()


@router.delete("/collections/{name}")
def delete_collection(
    name: str,
    principal: CollectionsManagerDep,
    rag: RagDep,
    security: SecurityDep,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    owner = owner_tenant(principal, tenant)
    rag.delete_collection(owner, name)
    audit(security, "collection.deleted", principal, owner, collection=name)
    return {"id": name, "object": "collection", "deleted": True}


@router.post("/collections/{name}/documents")
def upload_documents(
    name: str,
    principal: CollectionsManagerDep,
    rag: RagDep,
    security: SecurityDep,
    files: Annotated[list[UploadFile], File(description="One or more files.")],
    text_field: Annotated[str | None, Form(description="CSV/JSONL: the text column.")] = None,
    id_field: Annotated[str | None, Form(description="CSV/JSONL: the row id column.")] = None,
    metadata_fields: Annotated[
        str | None, Form(description="CSV/JSONL: comma-separated metadata columns.")
    ] = None,
    metadata: Annotated[
        str | None,
        Form(description='JSON object merged into every document\'s metadata: {"team": "legal"}.'),
    ] = None,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    tags: Any = None
    if metadata:
        try:
            tags = json.loads(metadata)
        except (json.JSONDecodeError, RecursionError):  # nested past Python's stack
            tags = None
        if not isinstance(tags, dict):
            raise InvalidRequest("metadata must be a JSON object", param="metadata")
    # One byte past the per-file limit is enough to refuse a file (in the report, with the
    # other files ingested), so an oversize upload is never held whole in memory.
    most = rag.settings.rag.max_upload_bytes + 1
    uploads = []
    for upload in files:
        uploads.append((_upload_source(upload.filename), upload.file.read(most)))
    fields = (
        [f.strip() for f in metadata_fields.split(",") if f.strip()] if metadata_fields else None
    )
    owner = owner_tenant(principal, tenant)
    report = rag.ingest_bytes(
        owner,
        name,
        uploads,
        text_field=text_field,
        id_field=id_field,
        metadata_fields=fields,
        metadata=tags,
    )
    audit(
        security,
        "documents.ingested",
        principal,
        owner,
        collection=name,
        files=[f for f, _ in uploads][:100],
        added=report.added,
        updated=report.updated,
        failed=len(report.failed),
    )
    return report.as_dict()


@router.get("/collections/{name}/documents")
def list_documents(
    name: str,
    principal: InferenceDep,
    rag: RagDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    records = rag.documents(owner_tenant(principal, tenant), name, offset, limit)
    return {"object": "list", "data": [r.public() for r in records]}


@router.delete("/collections/{name}/documents/{document_id}")
def delete_document(
    name: str,
    document_id: int,
    principal: CollectionsManagerDep,
    rag: RagDep,
    security: SecurityDep,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    owner = owner_tenant(principal, tenant)
    record = rag.delete_document(owner, name, document_id)
    audit(
        security,
        "document.deleted",
        principal,
        owner,
        collection=name,
        document_id=document_id,
        source=record.source,
    )
    return record.public() | {"deleted": True}


@router.post("/collections/{name}/search")
async def search(
    name: str,
    body: SearchRequest,
    principal: InferenceDep,
    rag: RagDep,
    security: SecurityDep,
    ctx: ContextDep,
    tenant: TenantQuery = None,
) -> dict[str, Any]:
    collection = await asyncio.to_thread(rag.collection, owner_tenant(principal, tenant), name)
    # Recorded under the collection's embedder, which embeds the query (not in lexical mode).
    ctx.model = collection.spec.embedder
    tokens = 0 if body.mode == "lexical" else count_tokens(body.query)
    async with security.admitted(ctx, tokens):
        hits = await asyncio.to_thread(
            rag.search_collection,
            collection,
            body.query,
            top_k=body.top_k,
            mode=body.mode,
            filters=body.filters,
        )
    return {"object": "list", "mode": body.mode, "data": [h.public() for h in hits]}


def _upload_source(filename: str | None) -> str:
    """An upload's document source: the file name as the client sent it, with the folders
    it named (``handbook/es/README.md``), so two files of the same name in different
    folders stay two documents. Absolute paths, drive letters and ``..`` are dropped: the
    source names the document, it never points into the server's disk."""
    parts = (filename or "").replace("\\", "/").split("/")
    kept = [p for p in parts if p not in ("", ".", "..") and not p.endswith(":")]
    return "/".join(kept) or "upload"


@router.post("/collections/{name}/ask")
async def ask(
    name: str,
    body: AskRequest,
    request: Request,
    _: InferenceDep,
    gateway: GatewayDep,
    ctx: ContextDep,
    tenant: TenantQuery = None,
) -> Response:
    """Retrieve from the caller's tenant's collection and answer with citations."""
    params = SamplingParams(
        max_tokens=body.max_tokens,
        temperature=0.2 if body.temperature is None else body.temperature,
        explicit=frozenset({"temperature"}),  # the answer's default, for remote models too
    )
    gen = GenerationRequest(
        request_id=new_request_id("ask"),
        model=body.model or gateway.settings.default_model,
        params=params,
        messages=[ChatMessage("user", body.question)],
        stream=body.stream,
        extra={
            "rag": {
                "collection": name,
                "top_k": body.top_k,
                "mode": body.mode,
                "filters": body.filters,
                "tenant": tenant,
            }
        },
    )
    try:
        # Watched from the start: a client that leaves while its question waits in the
        # queue gives its place back, as on the chat and completion routes.
        stream = await start(request, gateway, gen, ctx, "question")
        if body.stream:
            return SSEResponse(
                ChunkStream(stream, True, True, ctx, rag=True).events(), stream.shown
            )
        done = await until_disconnect(request, stream.collect())
    except ClientDisconnected:
        return Response(status_code=499)
    return JSONResponse(
        {
            "id": gen.request_id,
            "object": "collection.answer",
            "created": stream.created,
            "model": stream.model,
            "collection": name,
            "answer": done.text,
            "finish_reason": "length" if done.finish_reason == "length" else "stop",
            "citations": stream.citations,
            "groundedness": stream.groundedness,
            "usage": usage(done.prompt_tokens, done.completion_tokens),
        }
    )


@router.post("/embeddings")
async def embeddings(
    body: EmbeddingRequest,
    principal: InferenceDep,
    rag: RagDep,
    security: SecurityDep,
    ctx: ContextDep,
) -> dict[str, Any]:
    name = body.model or rag.settings.rag.default_embedder
    # As for chat models: 404 for an unknown one, 403 for one the key may not use, before
    # anything is charged.
    if name not in rag.embedders.names():
        raise ModelNotFound(name, rag.embedders.names())
    principal.require_model(name)
    ctx.model = name
    texts = [body.input] if isinstance(body.input, str) else body.input
    tokens = sum(count_tokens(t) for t in texts)
    async with security.admitted(ctx, tokens):
        vectors = await asyncio.to_thread(_embed, rag, name, texts)
    if body.dimensions is not None:
        if body.dimensions > vectors.shape[1]:
            raise InvalidRequest(f"{name} has {vectors.shape[1]} dimensions", param="dimensions")
        # Truncate and re-normalise, as OpenAI does for its shortened embeddings.
        vectors = vectors[:, : body.dimensions]
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    data = []
    for i, vector in enumerate(vectors):
        embedding: Any
        if body.encoding_format == "base64":
            embedding = base64.b64encode(vector.astype(np.float32).tobytes()).decode()
        else:
            embedding = [float(x) for x in vector]
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _embed(rag: RagService, name: str, texts: list[str]) -> Any:
    rag.embedders.spec(name)  # 400 for an unknown embedder before loading anything
    return rag.embed(name, texts)
