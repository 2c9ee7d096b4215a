"""Metadata filters of the embedded store as SQL over ``documents d``: the columns a
filter may name directly, and the rest read from the JSON metadata with their JSON type,
so a number matches numbers, a string strings, and a boolean booleans only."""

from __future__ import annotations

from typing import Any

from genaiops.rag.stores.filters import COLUMN_TYPES, RANGES, Filters, conditions

_COLUMNS = {"source": "d.source", "kind": "d.kind", "document_id": "d.id"}


def _typed_equals(value: Any) -> str:
    """SQL true when the metadata field (a JSON path, bound once for a boolean, else
    twice) holds ``value`` with its JSON type (the value bound after the paths)."""
    if isinstance(value, bool):
        return f"json_type(d.metadata, ?) = '{'true' if value else 'false'}'"
    kinds = "('integer', 'real')" if isinstance(value, int | float) else "('text')"
    return f"(json_type(d.metadata, ?) IN {kinds} AND json_extract(d.metadata, ?) = ?)"


def filter_sql(filters: Filters | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for c in conditions(filters):
        column = _COLUMNS.get(c.field)
        path = f'$."{c.field}"'
        value = column or "json_extract(d.metadata, ?)"
        field_args = [] if column else [path]
        marks = ",".join("?" * len(c.values))
        if c.op in ("in", "not_in") and column is None:
            # json_extract reads true as 1 and false as 0: each value is compared with
            # values of its own JSON type, so true matches true only, never 1.
            any_of = " OR ".join(_typed_equals(v) for v in c.values)
            matched = f"COALESCE(({any_of}), 0)"
            clauses.append(matched if c.op == "in" else f"NOT {matched}")
            for v in c.values:
                args += [path] if isinstance(v, bool) else [path, path, v]
        elif c.op == "in":
            clauses.append(f"{value} IN ({marks})")
            args += [*field_args, *c.values]
        elif c.op == "not_in":
            clauses.append(f"({value} IS NULL OR {value} NOT IN ({marks}))")
            args += [*field_args, *field_args, *c.values]
        elif column is None:
            # Like with like: a number compares only with numbers, text with text.
            types = "('integer', 'real')" if c.numeric else "('text')"
            clauses.append(f"(json_type(d.metadata, ?) IN {types} AND {value} {RANGES[c.op]} ?)")
            args += [path, path, c.values[0]]
        elif COLUMN_TYPES[c.field] == c.kind:
            clauses.append(f"{value} {RANGES[c.op]} ?")
            args.append(c.values[0])
        else:
            clauses.append("0")  # a number against text, or text against a number
    return (" AND " + " AND ".join(clauses), args) if clauses else ("", [])
