"""Turning files, uploads and SQL rows into :class:`~genaiops.rag.documents.LoadedDocument`.

The public API: :func:`load_file`, :func:`load_bytes` (HTTP uploads, nothing written to
disk), :func:`load_sql`, :func:`iter_files` and :data:`SUPPORTED`. Every failure of one
input is a :class:`~genaiops.rag.documents.LoadError` whose one-line message starts with
the file name, so ingestion can report it and go on with the other inputs.

Modules: ``files`` (selection, limits, dispatch), ``text`` (txt, Markdown, HTML),
``office`` (PDF, DOCX), ``tables`` (CSV, JSONL and the row rules), ``sql``. The heavy
parsers (pypdf, python-docx, BeautifulSoup, SQLAlchemy) are imported only by the
functions that use them, so importing this package is cheap.
"""

from __future__ import annotations

from genaiops.rag.loaders._common import SUPPORTED
from genaiops.rag.loaders.files import iter_files, load_bytes, load_file
from genaiops.rag.loaders.sql import load_sql

__all__ = ["SUPPORTED", "iter_files", "load_bytes", "load_file", "load_sql"]
