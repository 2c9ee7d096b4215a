"""Row sources: CSV and JSONL files, and the row-to-document rules they share with SQL.

Each row with text becomes its own document, so one file can replace many small ones
(FAQ entries, tickets, product sheets). A row is keyed by ``id_field`` when given (stable
across edits that reorder rows) or else by its 1-based row number; for JSONL the row
number is the line number, so error messages and locators point at the same line.
Duplicate ids are refused: they would silently replace each other in the store.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from genaiops.rag.documents import LoadedDocument, LoadError, Section
from genaiops.rag.loaders._common import Input, RowOptions, decode_text, one_line, sha256_hex

# The key under which csv.DictReader puts values beyond the header's columns.
_EXTRA = "_extra"


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _json_value(value: Any) -> Any:
    """Metadata must survive JSON storage: dates, decimals and bytes become strings."""
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def row_hash(row: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        dict(row), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return sha256_hex(canonical.encode("utf-8"))


def check_columns(
    options: RowOptions, columns: Iterable[str], fail: Callable[[str], LoadError]
) -> None:
    """Refuse a header (CSV) or result (SQL) that lacks a field the options name."""
    present = list(columns)
    wanted = [options.text_field, options.id_field, *options.metadata_fields]
    missing = [name for name in wanted if name is not None and name not in present]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise fail(f"column {names} not found; columns: {', '.join(present) or 'none'}")


def rows_to_documents(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    options: RowOptions,
    source: str,
    title: str,
    kind: str,
    fail: Callable[[str], LoadError],
    unit: str = "row",
) -> list[LoadedDocument]:
    """One document per (row number, row) with non-empty text, by the module's rules."""
    text_field = options.text_field
    if text_field is None:
        raise fail(f"text_field is required for {kind.upper()} sources")
    documents: list[LoadedDocument] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        if text_field not in row:
            raise fail(f"{unit} {number} has no field {text_field!r}")
        text = _as_text(row[text_field]).strip()
        if not text:
            continue
        locator = str(number)
        if options.id_field is not None:
            locator = _as_text(row.get(options.id_field)).strip()
            if not locator:
                raise fail(f"{unit} {number} has no value for id field {options.id_field!r}")
            if locator in seen:
                raise fail(f"{unit} {number} repeats id {locator!r} of {unit} {seen[locator]}")
            seen[locator] = number
        metadata = {name: _json_value(row[name]) for name in options.metadata_fields if name in row}
        metadata["row"] = number
        documents.append(
            LoadedDocument(
                source=source,
                title=f"{title} #{locator}",
                sections=[Section(text=text)],
                kind=kind,
                # What is stored, not only the row: other text or metadata fields chosen on
                # the next ingest (or a row that moved) make the document changed.
                content_hash=row_hash(
                    {"row": row_hash(row), "text_field": text_field, "metadata": metadata}
                ),  # fmt: skip
                locator=locator,
                metadata=metadata,
            )
        )
    return documents


def load_csv(item: Input) -> list[LoadedDocument]:
    if item.rows.text_field is None:
        raise item.fail("text_field is required for CSV sources")
    text = decode_text(item)
    try:
        # Spreadsheets exported in Spanish or Portuguese locales use ';'. Only the
        # delimiter is sniffed, and only from the header line, where no quoted text can
        # mislead it; quoting stays Excel's.
        delimiter = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    # A cell may hold a long text (an article, a ticket thread): the csv module's default
    # cap of 128 KiB per field would refuse the whole file. The upload limit is the cap.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, restkey=_EXTRA)
    try:
        columns = reader.fieldnames or []
        check_columns(item.rows, columns, item.fail)
        rows = [(number, row) for number, row in enumerate(reader, start=1)]
    except csv.Error as exc:
        raise item.fail(f"cannot read CSV at line {reader.line_num}: {one_line(str(exc))}") from exc
    return rows_to_documents(
        rows, options=item.rows, source=item.source, title=item.stem, kind="csv", fail=item.fail
    )


def _jsonl_rows(item: Input, text: str) -> list[tuple[int, Mapping[str, Any]]]:
    rows: list[tuple[int, Mapping[str, Any]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise item.fail(f"line {number} is not valid JSON: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise item.fail(f"line {number} is not a JSON object")
        rows.append((number, value))
    return rows


def load_jsonl(item: Input) -> list[LoadedDocument]:
    if item.rows.text_field is None:
        raise item.fail("text_field is required for JSONL sources")
    rows = _jsonl_rows(item, decode_text(item))
    return rows_to_documents(
        rows,
        options=item.rows,
        source=item.source,
        title=item.stem,
        kind="jsonl",
        fail=item.fail,
        unit="line",
    )
