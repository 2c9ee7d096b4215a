"""The pgvector store's two retrievers, as SQL.

- BM25 over ``rag_terms`` with FTS5's formula and constants (k1 = 1.2, b = 0.75, idf
  floored at 1e-6) on the same folded terms (rag/lexical.py), split at underscores as
  FTS5's tokenizer splits them: the embedded store's scores, to rounding.
- Inner product through the collection's HNSW index once it has one, exact otherwise and
  whenever filters leave the graph's nearest chunks too few.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from genaiops.rag import lexical
from genaiops.rag.crypto import Sealer
from genaiops.rag.stores.base import Collection, Filters
from genaiops.rag.stores.filters import COLUMN_TYPES, RANGES, conditions
from genaiops.rag.stores.pgvector.pool import vector_text

if TYPE_CHECKING:
    import psycopg

_K1, _B = 1.2, 0.75
_COLUMNS = {"source": "d.source", "kind": "d.kind", "document_id": "d.id"}


def words(text: str, sealer: Sealer) -> list[str]:
    """The terms BM25 counts, as FTS5 counts them in the embedded store: its tokenizer
    splits plaintext terms at underscores (keyed term hashes have none)."""
    found = lexical.terms(text)
    if sealer.enabled:
        return found
    return [part for word in found for part in word.split("_") if part]


def filter_sql(filters: Filters | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for c in conditions(filters):
        column = _COLUMNS.get(c.field)
        if column is not None:
            values = [_column_value(c.field, v) for v in c.values]
            if c.op == "in":
                clauses.append(f"{column} = ANY(%s)")
                args.append(values)
            elif c.op == "not_in":
                clauses.append(f"NOT ({column} = ANY(%s))")
                args.append(values)
            elif COLUMN_TYPES[c.field] == c.kind:
                clauses.append(f"{column} {RANGES[c.op]} %s")
                args.append(values[0])
            else:
                clauses.append("FALSE")  # a number against text, or text against a number
            continue
        # JSON values compare as JSON: 1 matches 1.0, "1" does not match 1.
        encoded = [json.dumps(v) for v in c.values]
        if c.op == "in":
            clauses.append("d.metadata -> %s = ANY(%s::jsonb[])")
            args += [c.field, encoded]
        elif c.op == "not_in":
            clauses.append(
                "(d.metadata -> %s IS NULL OR NOT (d.metadata -> %s = ANY(%s::jsonb[])))"
            )
            args += [c.field, c.field, encoded]
        else:
            # Like with like: a number compares only with numbers, a string with strings.
            clauses.append(
                f"(jsonb_typeof(d.metadata -> %s) = %s AND d.metadata -> %s {RANGES[c.op]}"
                " %s::jsonb)"
            )
            args += [c.field, "number" if c.numeric else "string", c.field, encoded[0]]
    return (" AND " + " AND ".join(clauses), args) if clauses else ("", [])


def _column_value(field: str, value: Any) -> Any:
    """A filter value as the column's type: a document id given as digits is that id;
    anything else that is no number matches no document (id -1)."""
    if COLUMN_TYPES[field] == "number":
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else -1
    return value if isinstance(value, str) else str(value)


def bm25(
    conn: psycopg.Connection[Any],
    collection: Collection,
    sealer: Sealer,
    query: str,
    k: int,
    filters: Filters | None,
) -> list[tuple[int, float]]:
    wanted = " ".join(lexical.query_terms(query))
    unique = list(dict.fromkeys(sealer.term(t) for t in words(wanted, sealer)))
    where, args = filter_sql(filters)
    if not unique:
        return []
    found = conn.execute(
        "SELECT t.term, COUNT(*) AS df, MIN(c.n_chunks) AS n, MIN(c.n_terms) AS total"
        " FROM rag_terms t JOIN rag_collections c ON c.id = t.collection_id"
        " WHERE t.collection_id = %s AND t.term = ANY(%s) GROUP BY t.term",
        (collection.id, unique),
    ).fetchall()
    if not found:
        return []
    n, avgdl = found[0]["n"], found[0]["total"] / max(found[0]["n"], 1)
    idf = {
        r["term"]: max(float(np.log((n - r["df"] + 0.5) / (r["df"] + 0.5))), 1e-6) for r in found
    }
    joins = (
        " JOIN rag_chunks c ON c.id = p.chunk_id JOIN rag_documents d ON d.id = c.document_id"
        if where
        else ""
    )
    rows = conn.execute(
        "SELECT p.chunk_id AS id, SUM(q.idf * p.tf * %s / (p.tf + %s * (%s + %s * p.dl"
        " / %s::float8))) AS score"
        " FROM unnest(%s::text[], %s::float8[]) AS q(term, idf)"
        " JOIN rag_terms p ON p.collection_id = %s AND p.term = q.term"
        f"{joins} WHERE TRUE{where}"
        " GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT %s",
        (_K1 + 1, _K1, 1 - _B, _B, avgdl, list(idf), list(idf.values()), collection.id, *args, k),
    ).fetchall()
    return [(int(r["id"]), float(r["score"])) for r in rows]


def nearest(
    conn: psycopg.Connection[Any],
    collection: Collection,
    vector: Any,
    k: int,
    filters: Filters | None,
    *,
    indexed: bool,
) -> list[tuple[int, float]]:
    query = vector_text(vector)
    dim = int(collection.spec.dim)
    where, args = filter_sql(filters)
    joins = " JOIN rag_documents d ON d.id = c.document_id" if where else ""
    if indexed:
        # The partial index's expression and predicate, the collection id written as the
        # same literal (a bound parameter, typed otherwise, would keep the planner from
        # proving the index applies); sorting is discouraged so the planner walks the graph
        # even while its statistics describe a smaller table. With filters, the graph's
        # nearest chunks are filtered afterwards; if fewer than k pass, search exactly.
        with conn.transaction():
            conn.execute("SET LOCAL enable_sort = off")
            rows = conn.execute(
                f"SELECT c.id, (c.embedding::vector({dim})) <#> %s::vector({dim}) AS d"
                f" FROM rag_chunks c{joins} WHERE c.collection_id = {int(collection.id)}{where}"
                " ORDER BY d LIMIT %s",
                (query, *args, k),
            ).fetchall()
        if len(rows) >= k or not where:
            return [(int(r["id"]), -float(r["d"])) for r in rows]
    # Exact: the uncast expression matches no index, so every allowed chunk is compared.
    rows = conn.execute(
        f"SELECT c.id, c.embedding <#> %s::vector AS d FROM rag_chunks c{joins}"
        f" WHERE c.collection_id = %s{where} ORDER BY d, c.id LIMIT %s",
        (query, collection.id, *args, k),
    ).fetchall()
    return [(int(r["id"]), -float(r["d"])) for r in rows]
