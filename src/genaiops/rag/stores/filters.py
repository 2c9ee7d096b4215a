"""Metadata filters: what a search may be narrowed to, checked once for every store.

A filter maps a field (a metadata key, or ``source``, ``kind``, ``document_id``) to a value
(equality), a list of values (any of them), or an object of operators, as in MongoDB and
the LangChain/LlamaIndex vector stores:

    {"lang": "es"}                       equal
    {"lang": ["es", "pt"]}               any of
    {"year": {"$gte": 2020, "$lt": 2025}}  a range (all operators must hold)
    {"team": {"$ne": "legal"}}           not equal (documents without the key match)
    {"area": {"$in": [...]}, "draft": {"$nin": [true]}}

Ranges compare like with like: a number only with numbers, a string only with strings
(lexicographically, so ISO dates work), and a value of the other type never matches; no
metadata value is converted. Booleans take only equality operators.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from genaiops.errors import InvalidRequest

Filters = dict[str, Any]
_FIELD_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Operator -> SQL comparison, for one operand.
RANGES = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_MATCH = ("$eq", "$in")
_EXCLUDE = ("$ne", "$nin")
OPERATORS = (*_MATCH, *_EXCLUDE, *RANGES)
# The document columns a filter may name besides metadata keys, and their types.
COLUMN_TYPES = {"source": "text", "kind": "text", "document_id": "number"}


@dataclass(frozen=True)
class Condition:
    field: str
    # "in": the value is one of ``values``; "not_in": it is none of them (or absent);
    # a RANGES key: it compares so with ``values[0]``.
    op: str
    values: tuple[Any, ...]

    @property
    def numeric(self) -> bool:
        """A range over numbers (else over strings)."""
        return not isinstance(self.values[0], str)

    @property
    def kind(self) -> str:
        """What a range compares, as ``COLUMN_TYPES`` names it."""
        return "number" if self.numeric else "text"


# Values in one request's filters: each becomes a bound parameter, and SQLite refuses an
# expression tree past a few thousand of them.
MAX_VALUES = 500


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def conditions(filters: Filters | None) -> list[Condition]:
    """``filters`` checked and normalised into conditions, every store's input for its
    WHERE clause. Field names are limited to a safe alphabet; a mistake is a 400."""
    out: list[Condition] = []
    for name, wanted in (filters or {}).items():
        if not isinstance(name, str) or not _FIELD_RE.fullmatch(name):
            raise InvalidRequest(f"invalid filter field {name!r}", param="filters")
        if isinstance(wanted, dict):
            if not wanted:
                raise InvalidRequest(f"filter {name!r} has no operator", param="filters")
            out += [_operator(name, op, operand) for op, operand in wanted.items()]
            continue
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or not all(_scalar(v) for v in values):
            raise InvalidRequest(
                f"filter {name!r} takes a value, a list of values or an object of "
                f"operators ({', '.join(OPERATORS)})",
                param="filters",
            )
        out.append(Condition(name, "in", tuple(values)))
    if sum(len(c.values) for c in out) > MAX_VALUES:
        raise InvalidRequest(f"filters hold at most {MAX_VALUES} values in all", param="filters")
    for condition in out:
        for value in condition.values:
            _in_range(condition.field, value)
            if condition.field in COLUMN_TYPES and isinstance(value, bool):
                raise InvalidRequest(
                    f"filter {condition.field!r} takes a "
                    f"{'string' if COLUMN_TYPES[condition.field] == 'text' else 'number'}, "
                    "not a boolean",
                    param="filters",
                )
    return out


def _in_range(name: str, value: Any) -> None:
    """Numbers the stores can compare: 64-bit integers, finite floats."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise InvalidRequest(
            f"filter {name!r}: {value} is out of range (integers have at most 64 bits)",
            param="filters",
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"filter {name!r}: {value} is not a finite number", param="filters")


def _operator(name: str, op: Any, operand: Any) -> Condition:
    if op not in OPERATORS:
        raise InvalidRequest(
            f"filter {name!r}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}",
            param="filters",
        )
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand or not all(_scalar(v) for v in operand):
            raise InvalidRequest(
                f"filter {name!r}: {op} takes a non-empty list of values", param="filters"
            )
        return Condition(name, "in" if op == "$in" else "not_in", tuple(operand))
    if not _scalar(operand):
        raise InvalidRequest(f"filter {name!r}: {op} takes one value", param="filters")
    if op in RANGES:
        if isinstance(operand, bool):
            raise InvalidRequest(
                f"filter {name!r}: {op} compares numbers or strings, not booleans",
                param="filters",
            )
        return Condition(name, op, (operand,))
    return Condition(name, "in" if op == "$eq" else "not_in", (operand,))
