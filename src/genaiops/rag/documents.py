"""The values that flow through ingestion: a loaded document split into sections (the
loader's view: pages, headings, rows) and the chunks cut from it (the chunker's view);
the user metadata an ingest adds to its documents."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genaiops.errors import InvalidRequest


class LoadError(InvalidRequest):
    """One input could not be read (corrupt, unsupported, too large, empty). Ingestion
    reports it for that file and goes on with the others."""

    code = "load_error"


@dataclass(frozen=True)
class Section:
    """A stretch of a document's text that belongs together: a page of a PDF, the body
    under one heading of a Markdown or HTML file, one row of a table."""

    text: str
    # 1-based page number (PDF) when known.
    page: int | None = None
    # The heading path above this text, e.g. "Install > Linux"; None when the format has none.
    heading: str | None = None


@dataclass
class LoadedDocument:
    # Where it came from: a file path, an upload's file name, or "sql:<table or query>".
    source: str
    title: str
    sections: list[Section]
    # txt, md, html, pdf, docx, csv, jsonl, sql
    kind: str
    # SHA-256 of the raw content (bytes of the file, or the row's canonical JSON), used to
    # skip re-ingesting unchanged documents.
    content_hash: str
    # Identifies the document within its source when one source yields many documents
    # (the row id of a CSV/JSONL line or SQL row); None for whole files.
    locator: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique within a collection: re-ingesting the same key replaces the document."""
        return self.source if self.locator is None else f"{self.source}#{self.locator}"

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


@dataclass(frozen=True)
class Chunk:
    text: str
    # Position of the chunk within its document, from 0.
    index: int
    tokens: int
    page: int | None = None
    heading: str | None = None


# Metadata keys a search filter can name (the store's rule for filter fields).
_METADATA_KEY_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Keys that filters read from the document itself, or that loaders set per row.
RESERVED_METADATA = frozenset({"source", "kind", "document_id", "title", "locator", "row"})


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """User metadata for an ingest: filterable keys, scalar values, no reserved key."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidRequest("metadata must be an object of key: value", param="metadata")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not _METADATA_KEY_RE.fullmatch(key):
            raise InvalidRequest(
                f"invalid metadata key {key!r}: use 1-64 letters, digits, '_', '.' or '-'",
                param="metadata",
            )
        if key in RESERVED_METADATA:
            raise InvalidRequest(
                f"metadata key {key!r} is reserved ({', '.join(sorted(RESERVED_METADATA))} are)",
                param="metadata",
            )
        if not isinstance(value, str | int | float | bool):
            raise InvalidRequest(
                f"metadata {key!r} must be a string, number or boolean", param="metadata"
            )
        out[key] = value
    return out


def with_metadata(document: LoadedDocument, metadata: dict[str, Any]) -> LoadedDocument:
    """The document with the ingest's metadata merged in (it wins over the loader's),
    hashed together with it so that other metadata makes the document changed."""
    if not metadata:
        return document
    tag = json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(f"{document.content_hash}\x00{tag}".encode()).hexdigest()
    return dataclasses.replace(
        document, metadata={**document.metadata, **metadata}, content_hash=digest
    )
