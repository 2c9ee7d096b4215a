"""The values that flow through ingestion: a loaded document split into sections (the
loader's view: pages, headings, rows) and the chunks cut from it (the chunker's view)."""

from __future__ import annotations

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
