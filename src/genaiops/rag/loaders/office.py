"""Loaders for PDF (pypdf) and DOCX (python-docx).

Both libraries can fail in many ways on a damaged file (their own errors, but also
KeyError, ValueError, zipfile and XML errors, even RecursionError), so each parse is
wrapped in a broad ``except Exception`` and turned into one LoadError for that file:
ingestion reports it and goes on with the others. pypdf also emits warnings while it
repairs a file; they are silenced here, since the outcome is either text or a LoadError.

PDF text comes from the text layer only: a scanned PDF (images of pages) gives no text
and is refused with a message saying so, as there is no OCR.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from genaiops.rag.documents import LoadedDocument, LoadError, Section
from genaiops.rag.loaders._common import Input, SectionBuilder, one_line, reason

if TYPE_CHECKING:
    from docx.document import Document as DocxDocument
    from docx.table import Table
    from docx.text.paragraph import Paragraph
    from pypdf import PdfReader

_HEADING_STYLE = re.compile(r"^heading\s+([1-9])$", re.IGNORECASE)


def _open_pdf(item: Input) -> PdfReader:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(item.data))
    if reader.is_encrypted:
        # Many PDFs are encrypted with an empty user password only to set permissions;
        # those open without one. Anything else needs a password we do not have.
        try:
            opened = reader.decrypt("")
        except Exception as exc:  # e.g. an algorithm pypdf cannot handle
            raise item.fail(f"cannot read PDF: it is encrypted ({reason(exc)})") from exc
        if not opened:
            raise item.fail("cannot read PDF: it is encrypted and needs a password")
    return reader


def _pdf_title(reader: PdfReader) -> str:
    try:
        info = reader.metadata
        title = info.title if info is not None else None
    except Exception:  # a broken /Info dictionary should not lose the text
        return ""
    return one_line(title) if isinstance(title, str) else ""


def load_pdf(item: Input) -> list[LoadedDocument]:
    # pypdf logs what it repairs or gives up on ("EOF marker not found") on top of raising;
    # the LoadError this turns into is the one report.
    logging.getLogger("pypdf").setLevel(logging.ERROR + 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = _open_pdf(item)
            sections: list[Section] = []
            for number, page in enumerate(reader.pages, start=1):
                text = (page.extract_text() or "").strip()
                if text:
                    sections.append(Section(text=text, page=number))
            pages = len(reader.pages)
            title = _pdf_title(reader)
        except LoadError:
            raise
        except Exception as exc:
            raise item.fail(f"cannot read PDF: {reason(exc)}") from exc
    if not sections:
        raise item.fail("has no extractable text; it may be scanned images (OCR is not supported)")
    return [item.document("pdf", title or item.stem, sections, {"pages": pages})]


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _blocks(element: Any, parent: Any) -> Iterator[Paragraph | Table]:
    """The paragraphs and tables directly in ``element`` (a body or a table cell), in
    order, with those inside block content controls (``w:sdt``: form fields, templates'
    placeholders) where they stand."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in element.iterchildren():
        if child.tag == _W + "p":
            yield Paragraph(child, parent)
        elif child.tag == _W + "tbl":
            yield Table(child, parent)
        elif child.tag == _W + "sdt":
            content = child.find(_W + "sdtContent")
            if content is not None:
                yield from _blocks(content, parent)


def _cell_text(cell: Any) -> str:
    """A cell's text on one line, with the rows of tables nested in it."""
    from docx.table import Table

    parts = []
    for block in _blocks(cell._tc, cell):
        parts.extend(_table_rows(block) if isinstance(block, Table) else [block.text])
    return one_line(" ".join(parts))


def _table_rows(table: Table) -> list[str]:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = _cell_text(cell)
            # A merged cell is returned once per grid column it spans: keep it once.
            if text and (not cells or cells[-1] != text):
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return lines


def _docx_sections(document: DocxDocument) -> SectionBuilder:
    from docx.table import Table

    builder = SectionBuilder()
    for block in _blocks(document.element.body, document):
        if isinstance(block, Table):
            for line in _table_rows(block):
                builder.line(line)
            continue
        text = block.text.strip()
        style = block.style.name if block.style is not None else ""
        match = _HEADING_STYLE.match(style or "")
        if match:
            builder.heading(int(match.group(1)), one_line(text))
        elif text:
            builder.line(text)
    return builder


# A DOCX is a zip: its XML unpacks to 10-20 times its size, and a crafted one to
# thousands of times (a 445 KB file to 800 MB of memory). What a document needs is far less.
_MAX_DOCX_XML_BYTES = 64 * 1024 * 1024
_MAX_DOCX_BYTES = 512 * 1024 * 1024


def _check_unpacked_size(item: Input) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(item.data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise item.fail(f"cannot read DOCX: {reason(exc)}") from exc
    xml = sum(e.file_size for e in entries if e.filename.endswith((".xml", ".rels")))
    total = sum(e.file_size for e in entries)
    if xml > _MAX_DOCX_XML_BYTES or total > _MAX_DOCX_BYTES:
        raise item.fail(
            f"cannot read DOCX: it unpacks to {total // (1024 * 1024)} MB "
            f"({xml // (1024 * 1024)} MB of XML; at most {_MAX_DOCX_XML_BYTES // (1024 * 1024)})"
        )


def load_docx(item: Input) -> list[LoadedDocument]:
    import docx

    _check_unpacked_size(item)
    try:
        document = docx.Document(io.BytesIO(item.data))
        builder = _docx_sections(document)
        title = document.core_properties.title or ""
    except Exception as exc:
        raise item.fail(f"cannot read DOCX: {reason(exc)}") from exc
    sections = builder.finish()
    if not sections:
        raise item.fail("has no text")
    return [item.document("docx", one_line(title) or builder.first_h1 or item.stem, sections)]
