"""Rows of a SQL table or query as documents, through any SQLAlchemy URL.

The table name never reaches SQL by string formatting: it goes through SQLAlchemy's
``table()`` construct, which quotes it for the dialect. A query is run as given (it is
the operator's own SQL), through ``text()``, so a literal colon must be written ``\\:``.
Error messages name the URL with its password hidden, and any password that a driver
echoes back is masked too. A SQLite URL to a missing file is refused rather than
creating an empty database there. All rows are read into memory; row sources are meant
for knowledge tables (FAQs, tickets), not for bulk exports.

Documents are named ``sql:<table>@<tag>`` (``sql:query:<digest>@<tag>`` for a query),
where the tag is 8 hex digits of a hash of the database URL without its password (a
SQLite file by its absolute path): the same table name in two databases is two sources,
and rotating a password keeps the name. Error messages start with ``sql:<table>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genaiops.rag.documents import LoadedDocument, LoadError
from genaiops.rag.loaders._common import RowOptions, one_line
from genaiops.rag.loaders.tables import check_columns, rows_to_documents

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.sql import Executable


def _statement(query: str | None, table: str | None) -> tuple[str, str, Executable]:
    """(source, title, statement) for exactly one of query and table."""
    from sqlalchemy import literal_column, select, text
    from sqlalchemy import table as table_clause

    if table is not None and query is None:
        if not table.strip():
            raise LoadError("sql: the table name is empty")
        # "schema.table" names a table in a schema; a dot inside a table name is not
        # supported (it would be ambiguous).
        schema, _, name = table.rpartition(".")
        clause = table_clause(name, schema=schema or None)
        return f"sql:{table}", table, select(literal_column("*")).select_from(clause)
    if query is not None and table is None:
        if not query.strip():
            raise LoadError("sql: the query is empty")
        digest = hashlib.sha256(query.encode("utf-8")).hexdigest()[:12]
        return f"sql:query:{digest}", f"query {digest}", text(query)
    raise LoadError("sql: give exactly one of query and table")


def _parse_url(url: str, source: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        # SQLAlchemy's reason could quote the URL, password included: keep it out.
        raise LoadError(f"{source}: invalid database URL") from exc


def _database_tag(parsed: URL) -> str:
    """8 hex digits naming the database: the URL without its password, a SQLite file by
    its absolute path (so the same file named from two working directories is one)."""
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parsed = parsed.set(database=str(Path(database).expanduser().resolve()))
    shown = parsed.render_as_string(hide_password=True)
    return hashlib.sha256(shown.encode("utf-8")).hexdigest()[:8]


def sql_source(url: str, *, query: str | None = None, table: str | None = None) -> str:
    """The source name of the documents that :func:`load_sql` reads with these arguments;
    raises LoadError for what load_sql would refuse before connecting."""
    base, _, _ = _statement(query, table)
    return f"{base}@{_database_tag(_parse_url(url, base))}"


def legacy_sql_source(query: str | None = None, table: str | None = None) -> str:
    """The name earlier releases gave the same documents, without the database tag."""
    return _statement(query, table)[0]


def _fetch(
    parsed: URL, statement: Executable, fail: Callable[[str], LoadError]
) -> tuple[list[str], list[Any]]:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    shown = parsed.render_as_string(hide_password=True)
    try:
        engine = create_engine(parsed)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise fail(f"cannot use {shown}: {one_line(str(exc))}") from exc
    try:
        with engine.connect() as conn:
            result = conn.execute(statement)
            columns = list(result.keys())
            rows = [dict(row) for row in result.mappings()]
    except SQLAlchemyError as exc:
        # A DBAPIError's own text adds the statement and a link; the driver's is enough.
        detail = exc.orig if isinstance(exc, DBAPIError) else exc
        raise fail(f"cannot read {shown}: {one_line(str(detail))}") from exc
    finally:
        engine.dispose()
    return columns, rows


def load_sql(
    url: str,
    *,
    query: str | None = None,
    table: str | None = None,
    text_field: str,
    id_field: str | None = None,
    metadata_fields: list[str] | None = None,
) -> list[LoadedDocument]:
    """One document per row of ``table`` (or of ``query``) with text in ``text_field``,
    named by :func:`sql_source`.

    Rows follow the CSV rules: locator = ``id_field`` value or the 1-based row number,
    metadata = the ``metadata_fields`` values plus ``row``, empty text skipped, and
    content_hash = SHA-256 of the row's canonical JSON with the fields chosen from it.
    """
    label, title, statement = _statement(query, table)
    parsed = _parse_url(url, label)
    source = f"{label}@{_database_tag(parsed)}"
    password = parsed.password

    def fail(message: str) -> LoadError:
        message = one_line(f"{label}: {message}")
        if password:
            message = message.replace(str(password), "***")
        return LoadError(message)

    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file:")
        if not in_memory and not Path(database).is_file():
            raise fail(f"database file not found: {database}")
    options = RowOptions(text_field, id_field, tuple(metadata_fields or ()))
    columns, rows = _fetch(parsed, statement, fail)
    check_columns(options, columns, fail)
    return rows_to_documents(
        enumerate(rows, start=1),
        options=options,
        source=source,
        title=title,
        kind="sql",
        fail=fail,
    )
