"""Pieces shared by the format loaders: the description of one input, the one-line
error messages, text decoding with a binary check, and the heading-path section builder
used by Markdown, HTML and DOCX.

Kept free of heavy imports so that importing any loader module stays cheap.
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass, field
from typing import Any

from genaiops.rag.documents import LoadedDocument, LoadError, Section

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".jsonl")

MB = 1024 * 1024

# How much of a decoded text the binary check looks at: enough to judge, cheap on 50 MB.
_BINARY_SAMPLE = 64 * 1024
_MAX_NON_PRINTABLE = 0.30
_ALLOWED_CONTROLS = frozenset("\n\r\t\f\v")


def one_line(text: str) -> str:
    """Collapse whitespace so a library's multi-line reason fits a one-line message."""
    return " ".join(text.split())


def reason(exc: BaseException) -> str:
    """A short reason for an exception: its message, else its class name."""
    return one_line(str(exc)) or type(exc).__name__


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_size(n: int) -> str:
    if n >= MB and n % MB == 0:
        return f"{n // MB} MB"
    if n >= MB:
        return f"{n / MB:.1f} MB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KB"
    return f"{n} bytes"


@dataclass(frozen=True)
class RowOptions:
    """How rows of CSV, JSONL and SQL become documents."""

    text_field: str | None = None
    id_field: str | None = None
    metadata_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Input:
    """One file's bytes and how to name it in documents and in error messages."""

    data: bytes
    # The file name that starts every error message (an upload's name, not a temp path).
    name: str
    stem: str
    source: str
    rows: RowOptions = field(default_factory=RowOptions)

    def fail(self, message: str) -> LoadError:
        """A LoadError whose one-line message starts with the file name."""
        sep = " " if message.startswith(("is ", "has ")) else ": "
        return LoadError(one_line(f"{self.name}{sep}{message}"))

    def document(
        self,
        kind: str,
        title: str,
        sections: list[Section],
        metadata: dict[str, Any] | None = None,
    ) -> LoadedDocument:
        """A whole-file document, hashed over the raw bytes."""
        return LoadedDocument(
            source=self.source,
            title=title.strip() or self.stem,
            sections=sections,
            kind=kind,
            content_hash=sha256_hex(self.data),
            metadata=metadata or {},
        )


def decode_text(item: Input) -> str:
    """UTF-16 with its byte-order mark (what Windows tools often save), UTF-8 (BOM
    allowed), else Windows-1252, else latin-1, refusing what looks like a binary file.

    latin-1 decodes any byte sequence, so the fallback never fails; the NUL and
    non-printable checks are what keep an image or archive renamed to .txt out.
    """
    data = item.data
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise item.fail("is not valid UTF-16 text") from exc
    elif b"\x00" in data:
        raise item.fail("is not a text file")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Windows-1252 ("ANSI") is latin-1 plus printable characters where latin-1 has
            # C1 controls (€, –, “ ”); latin-1 takes the five bytes cp1252 leaves undefined.
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    if "\x00" in text:
        raise item.fail("is not a text file")
    sample = text[:_BINARY_SAMPLE]
    if sample:
        bad = sum(1 for ch in sample if not ch.isprintable() and ch not in _ALLOWED_CONTROLS)
        if bad / len(sample) > _MAX_NON_PRINTABLE:
            raise item.fail("is not a text file")
    if not text.strip():
        raise item.fail("is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n")


class SectionBuilder:
    """Cuts a document into Sections at headings, naming each by its heading path.

    A heading closes the open section and replaces every heading at its level or deeper,
    so "# A / ## B / ## C" gives the paths "A > B" then "A > C". Headings with no text
    under them give no Section of their own.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self._lines: list[str] = []
        self._sections: list[Section] = []
        self.first_h1: str | None = None

    def heading(self, level: int, text: str) -> None:
        self.flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        if not text:
            # An empty heading still ends the section above it but names nothing.
            return
        self._stack.append((level, text))
        if level == 1 and self.first_h1 is None:
            self.first_h1 = text

    def line(self, text: str) -> None:
        self._lines.append(text.rstrip())

    def flush(self) -> None:
        lines = self._lines
        self._lines = []
        # Trim blank lines at both ends but keep the inner layout (code, paragraphs).
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            return
        path = " > ".join(text for _, text in self._stack) or None
        self._sections.append(Section(text="\n".join(lines), heading=path))

    def finish(self) -> list[Section]:
        self.flush()
        return self._sections
