"""genaiops collections / ingest / search / documents / ask: retrieval from the command
line, on the local store (the same one the server uses)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from genaiops.cli.common import (
    ConfigOption,
    cli_errors,
    command_group,
    settings_from,
    valid_tenant,
    write,
)
from genaiops.cli.keys import JsonOption, _emit, audit_event
from genaiops.errors import InvalidRequest
from genaiops.rag.documents import check_metadata
from genaiops.rag.loaders.sql import sql_source
from genaiops.rag.service import Mode, RagService
from genaiops.security.principal import SYSTEM_TENANT

collections_app = command_group("Create, list and delete collections.")
documents_app = command_group("List and delete documents of a collection.")

TenantOption = Annotated[
    str, typer.Option("--tenant", help="Tenant owning the collection.", callback=valid_tenant)
]
CollectionOption = Annotated[str, typer.Option("--collection", "-k", help="Collection name.")]
ListOption = Annotated[list[str] | None, typer.Option(help="Repeatable.")]
IncludeOption = Annotated[
    list[str] | None,
    typer.Option(help="Only files whose path under the folder matches this glob ('*.md', "
                 "'policies/**'); repeatable."),
]  # fmt: skip
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(help="Skip files whose path under the folder matches this glob; repeatable."),
]


@contextmanager
def rag_service(config: Path | None) -> Iterator[RagService]:
    service = RagService(settings_from(config))
    try:
        yield service
    finally:
        service.close()


_COLLECTION_COLUMNS = ["name", "tenant", "embedder", "documents", "chunks", "language", "encrypted"]


@collections_app.command("create")
def create(
    name: str,
    embedder: Annotated[str | None, typer.Option(help="use-multilingual, minilm, ...")] = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Target chunk size.")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Overlap between chunks.")] = None,
    language: Annotated[str | None, typer.Option(help="es, pt or en.")] = None,
    description: str = "",
    tenant: TenantOption = SYSTEM_TENANT,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a collection."""
    with cli_errors(), rag_service(config) as rag:
        if language not in (None, "es", "pt", "en"):
            raise InvalidRequest("--language must be es, pt or en", param="language")
        collection = rag.create_collection(
            tenant,
            name,
            embedder=embedder,
            chunk_tokens=chunk_tokens,
            chunk_overlap=chunk_overlap,
            language=language,
            description=description,
        )
        audit_event(config, "collection.created", tenant, collection=name)
        _emit(collection.public(), as_json, _COLLECTION_COLUMNS, "collection")


@collections_app.command("list")
def list_collections(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List collections with their document and chunk counts."""
    with cli_errors(), rag_service(config) as rag:
        rows = [c.public() for c in rag.collections(tenant)]
        _emit(rows, as_json, _COLLECTION_COLUMNS, "collections")


@collections_app.command("delete")
def delete(name: str, tenant: TenantOption = SYSTEM_TENANT, config: ConfigOption = None) -> None:
    """Delete a collection with all its documents, chunks and indexes."""
    with cli_errors(), rag_service(config) as rag:
        rag.delete_collection(tenant, name)
        audit_event(config, "collection.deleted", tenant, collection=name)
        typer.echo(f"deleted collection {name}", err=True)


_COPY_COLUMNS = ["tenant", "name", "copied", "unchanged", "chunks", "documents", "encrypted"]


@collections_app.command("copy")
def copy(
    to_store: Annotated[str, typer.Option("--to", help="Target store: pgvector or sqlite.")],
    from_store: Annotated[str, typer.Option("--from", help="Source store.")] = "sqlite",
    to_url: Annotated[
        str | None, typer.Option(help="Target database of a pgvector store (default: rag.url).")
    ] = None,
    from_url: Annotated[
        str | None, typer.Option(help="Source database of a pgvector store (default: rag.url).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's collections.")] = None,
    name: Annotated[
        list[str] | None, typer.Option("--name", help="Only this collection (repeatable).")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy collections from one store to another (e.g. the embedded store to PostgreSQL
    + pgvector when scaling out), with their chunks and vectors: nothing is embedded
    again. Documents the target already holds unchanged are skipped, so an interrupted
    copy can simply be run again."""
    from genaiops.rag.migrate import copy_collections, selected
    from genaiops.rag.stores import create_store

    with cli_errors():
        settings = settings_from(config)
        if (from_store, from_url) == (to_store, to_url):
            raise InvalidRequest("--from and --to name the same store", param="to")

        def store_settings(kind: str, url: str | None) -> Any:
            rag = settings.rag.model_copy(update={"store": kind, "url": url or settings.rag.url})
            return settings.model_copy(update={"rag": rag})

        source = create_store(from_store, store_settings(from_store, from_url))
        try:
            target = create_store(to_store, store_settings(to_store, to_url))
        except BaseException:
            source.close()
            raise
        try:
            chosen = selected(source, tenant, name)
            console = Console(stderr=True)
            with _progress_bar(console) as bar:
                task = bar.add_task("copy", total=sum(c.documents for c in chosen), rate="")
                report = copy_collections(
                    source, target, chosen, lambda _event, _info: bar.advance(task)
                )
        finally:
            source.close()
            target.close()
        if as_json:
            write(json.dumps(report.public(), ensure_ascii=False, indent=2) + "\n")
        else:
            _emit(report.collections, False, _COPY_COLUMNS, "copied")
        for failure in report.failed:
            what = escape(f"{failure['name']}: {failure['error']}")
            console.print(f"[red]not copied[/red] {what}")
        if report.failed:
            raise typer.Exit(1)


def _progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders.")] = None,
    collection: CollectionOption = "",
    include: IncludeOption = None,
    exclude: ExcludeOption = None,
    text_field: Annotated[str | None, typer.Option(help="CSV/JSONL/SQL text column.")] = None,
    id_field: Annotated[str | None, typer.Option(help="CSV/JSONL/SQL row id column.")] = None,
    metadata_field: ListOption = None,
    sql_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of a database.")] = None,
    sql_table: Annotated[str | None, typer.Option(help="Table to ingest.")] = None,
    sql_query: Annotated[str | None, typer.Option(help="Query to ingest.")] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            help="key=value added to every document's metadata, for --filter (numbers and "
            "true/false as such); repeatable.",
        ),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Also delete the documents of files that are gone from the given folders.",
        ),
    ] = False,
    tenant: TenantOption = SYSTEM_TENANT,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest files, folders (recursive) or SQL rows into a collection.

    Unchanged documents are skipped, so an interrupted run can simply be started again;
    rows no longer in a CSV/JSONL file or SQL table are deleted from the collection, and
    with --prune so are the documents of files deleted from the folders."""
    with cli_errors(), rag_service(config) as rag:
        if not collection:
            raise InvalidRequest("--collection is required", param="collection")
        database = _check_sources(paths, sql_url, text_field, sql_table, sql_query)
        tags = check_metadata(_metadata(metadata))
        # Fail on a bad collection or path before drawing the progress bar; the folders
        # are walked here once and the service gets the files.
        rag.collection(tenant, collection)
        from genaiops.rag.loaders import iter_files

        files = [f for p in paths or [] for f in iter_files(p, include=include, exclude=exclude)]
        console = Console(stderr=True)
        started = time.perf_counter()
        counts = {"chunks": 0}
        with _progress_bar(console) as bar:
            task = bar.add_task("ingest", total=len(files) if paths else None, rate="")

            def progress(event: str, info: dict[str, Any]) -> None:
                if event == "indexing":
                    bar.update(task, description="indexing")
                    return
                counts["chunks"] += int(info.get("chunks", 0))
                elapsed = max(time.perf_counter() - started, 1e-6)
                if event in ("file", "failed"):
                    bar.advance(task)
                done = bar.tasks[0].completed
                rate = f"{done / elapsed:.1f} files/s, {counts['chunks'] / elapsed:.0f} chunks/s"
                bar.update(task, rate=rate)
                if event == "failed":
                    what = escape(f"{info['source']}: {info['error']}")
                    console.print(f"[red]skipped[/red] {what}")
                elif event == "removed":
                    console.print(f"removed {escape(info['source'])} (no longer in the folder)")

            reports = []
            if paths:
                reports.append(
                    rag.ingest_paths(
                        tenant,
                        collection,
                        files,
                        text_field=text_field,
                        id_field=id_field,
                        metadata_fields=metadata_field,
                        metadata=tags,
                        progress=progress,
                        prune_under=[p for p in paths if p.is_dir()] if prune else (),
                    )
                )
            if sql_url and text_field:  # both checked by _check_sources
                reports.append(
                    rag.ingest_sql(
                        tenant,
                        collection,
                        sql_url,
                        text_field=text_field,
                        table=sql_table,
                        query=sql_query,
                        id_field=id_field,
                        metadata_fields=metadata_field,
                        metadata=tags,
                        progress=progress,
                    )
                )
        summary = _merge([r.as_dict() for r in reports])
        # What was read: paths, and a database by its source name.
        read = [str(p) for p in paths or []][:100] + ([database] if database else [])
        audit_event(config, "documents.ingested", tenant, collection=collection, files=read,
                    added=summary["added"], updated=summary["updated"],
                    removed=summary["removed"], failed=len(summary["failed"]))  # fmt: skip
        if as_json:
            write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
        else:
            console.print(
                f"{summary['documents']} documents: {summary['added']} added, "
                f"{summary['updated']} updated, {summary['unchanged']} unchanged, "
                f"{summary['removed']} removed, {len(summary['failed'])} failed; "
                f"{summary['chunks']} chunks "
                f"({summary['embedded']} embedded, {summary['reused']} reused) "
                f"in {summary['seconds']:.1f} s"
            )
        if summary["failed"]:
            # Every file that could be read is in; scripts still learn that some were not:
            # 1 when nothing could be ingested, 3 when only some files failed.
            raise typer.Exit(3 if summary["documents"] else 1)


def _check_sources(
    paths: list[Path] | None,
    sql_url: str | None,
    text_field: str | None,
    sql_table: str | None,
    sql_query: str | None,
) -> str | None:
    """What to read, checked before the progress bar is drawn; the database's source name
    (its table or query and a tag that never holds the URL's password), if one is read."""
    if not paths and not sql_url:
        raise InvalidRequest("give files or folders to ingest, or --sql-url")
    if sql_url:
        if not text_field:
            raise InvalidRequest("--text-field is required with --sql-url")
        if (sql_table is None) == (sql_query is None):
            raise InvalidRequest("--sql-url takes one of --sql-table or --sql-query")
        return sql_source(sql_url, query=sql_query, table=sql_table)
    return None


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    summary = reports[0]
    for extra in reports[1:]:
        for key, value in extra.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                summary[key] += value
            elif isinstance(value, list):
                summary[key] = summary[key] + value
    return summary


def _filters(pairs: list[str] | None) -> dict[str, Any] | None:
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--filter takes key=value, got {pair!r}", param="filter")
        typed = _filter_value(value)
        values = out.setdefault(key, [])
        values.append(typed)
        if typed is not value:
            # Metadata read from CSV columns or front matter holds numbers as text:
            # ``year=2024`` matches the number 2024 and the text "2024".
            values.append(value)
    return out


def _where(text: str | None, pairs: dict[str, Any] | None) -> dict[str, Any] | None:
    """``--where`` (a JSON object of filters) over ``--filter`` pairs."""
    if text is None:
        return pairs
    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"--where is not valid JSON: {exc.msg}", param="where") from exc
    if not isinstance(given, dict):
        raise InvalidRequest("--where takes a JSON object of filters", param="where")
    return (pairs or {}) | given


def _metadata(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--metadata takes key=value, got {pair!r}", param="metadata")
        if key in out:
            raise InvalidRequest(f"--metadata {key} is given twice", param="metadata")
        out[key] = _filter_value(value)
    return out


def _filter_value(text: str) -> Any:
    """``row=2`` matches the number 2 and ``draft=true`` the boolean, as JSON metadata
    stores them; anything else ("007", "1e3", "abc") is a string."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?(?:0|[1-9]\d*)", text):
        return int(text)
    if re.fullmatch(r"-?(?:0|[1-9]\d*)\.\d+", text):
        return float(text)
    return text


def search(
    query: str,
    collection: CollectionOption = "",
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or lexical.")] = "hybrid",
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="Metadata key=value (a number or true/false also matches its text); repeatable.",
        ),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            help='Filters as JSON, operators included: \'{"year": {"$gte": 2020}}\'.',
        ),
    ] = None,
    tenant: TenantOption = SYSTEM_TENANT,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search a collection (hybrid BM25 + dense by default)."""
    with cli_errors(), rag_service(config) as rag:
        if not collection:
            raise InvalidRequest("--collection is required", param="collection")
        if mode not in ("hybrid", "dense", "lexical"):
            raise InvalidRequest("--mode must be hybrid, dense or lexical", param="mode")
        hits = rag.search(
            tenant,
            collection,
            query,
            top_k=top_k,
            mode=cast(Mode, mode),
            filters=_where(where, _filters(filter_)),
        )
        if as_json:
            write(json.dumps([h.public() for h in hits], ensure_ascii=False, indent=2) + "\n")
            return
        console = Console()
        for rank, hit in enumerate(hits, start=1):
            where = hit.source + (f" p.{hit.page}" if hit.page else "")
            console.print(
                f"[bold]{rank}.[/bold] {escape(f'{hit.title} — {where}')} "
                f"[dim]({', '.join(hit.retrievers)}; score {hit.score:.4f})[/dim]"
            )
            console.print("   " + " ".join(hit.text.split())[:300], markup=False)


@documents_app.command("list")
def list_documents(
    collection: CollectionOption,
    tenant: TenantOption = SYSTEM_TENANT,
    offset: Annotated[int, typer.Option(min=0, max=2**53)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the documents of a collection."""
    with cli_errors(), rag_service(config) as rag:
        rows = [d.public() for d in rag.documents(tenant, collection, offset, limit)]
        _emit(rows, as_json, ["id", "source", "title", "kind", "chunks"], "documents")


@documents_app.command("delete")
def delete_document(
    document_id: int,
    collection: CollectionOption,
    tenant: TenantOption = SYSTEM_TENANT,
    config: ConfigOption = None,
) -> None:
    """Delete a document and its chunks from the collection and its indexes."""
    with cli_errors(), rag_service(config) as rag:
        record = rag.delete_document(tenant, collection, document_id)
        audit_event(config, "document.deleted", tenant, collection=collection,
                    document_id=document_id, source=record.source)  # fmt: skip
        typer.echo(f"deleted document {record.id} ({record.source})", err=True)


def ask(
    question: str,
    collection: CollectionOption = "",
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=50)] = 5,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 256,
    tenant: TenantOption = SYSTEM_TENANT,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer a question from a collection with the model in-process, citing sources."""
    from genaiops.engines.base import ChatMessage, GenerationRequest, SamplingParams
    from genaiops.gateway.context import RequestContext
    from genaiops.gateway.pipeline import new_request_id
    from genaiops.gateway.service import Gateway
    from genaiops.security.principal import Principal

    async def run(rag: RagService) -> dict[str, Any]:
        settings = rag.settings
        name = model or settings.default_model
        gateway = Gateway(settings, only=[name], rag=rag)
        await gateway.start()
        try:
            await gateway.wait_ready()
            request = GenerationRequest(
                new_request_id("ask"),
                name,
                SamplingParams(max_tokens=max_tokens, temperature=0.2),
                messages=[ChatMessage("user", question)],
                extra={"rag": {"collection": collection, "top_k": top_k}},
            )
            ctx = RequestContext(request.request_id)
            ctx.principal = Principal(tenant=tenant, role="user", actor="cli", via="cli")
            stream = await gateway.generate(request, ctx)
            done = await stream.collect()
            return {"answer": done.text, "citations": stream.citations, "model": name}
        finally:
            await gateway.close()

    with cli_errors(), rag_service(config) as rag:
        if not collection:
            raise InvalidRequest("--collection is required", param="collection")
        result = asyncio.run(run(rag))
        if as_json:
            write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
            return
        write(result["answer"].strip() + "\n")
        for c in result["citations"]:
            where = c["source"] + (f" p.{c['page']}" if c["page"] else "")
            write(f"  [{c['index']}] {c['title']} — {where}\n")
