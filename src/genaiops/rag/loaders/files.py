"""Files to documents: choosing the files of a folder, the size and emptiness checks, and
dispatch by suffix to the format loaders.

``load_file`` and ``load_bytes`` share one path after the bytes are in memory, so an
upload and the same file on disk give identical documents. The size limit is checked on
the file's size before it is read, so an oversized file costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from fnmatch import fnmatchcase
from pathlib import Path, PurePath, PurePosixPath

from genaiops.rag.documents import LoadedDocument, LoadError
from genaiops.rag.loaders._common import SUPPORTED, Input, RowOptions, format_size, reason
from genaiops.rag.loaders.office import load_docx, load_pdf
from genaiops.rag.loaders.tables import load_csv, load_jsonl
from genaiops.rag.loaders.text import load_html, load_markdown, load_txt

DEFAULT_MAX_BYTES = 50 * 1024 * 1024

_LOADERS: dict[str, Callable[[Input], list[LoadedDocument]]] = {
    ".txt": load_txt,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".csv": load_csv,
    ".jsonl": load_jsonl,
}


def _too_large(name: str, max_bytes: int) -> LoadError:
    return LoadError(f"{name} is larger than the {format_size(max_bytes)} limit")


def _unsupported(name: str, suffix: str) -> LoadError:
    shown = suffix or "no suffix"
    return LoadError(f"{name}: unsupported file type ({shown}); supported: {', '.join(SUPPORTED)}")


def _load(
    data: bytes,
    *,
    name: str,
    suffix: str,
    source: str,
    text_field: str | None,
    id_field: str | None,
    metadata_fields: list[str] | None,
) -> list[LoadedDocument]:
    loader = _LOADERS.get(suffix.lower())
    if loader is None:
        raise _unsupported(name, suffix)
    if not data.strip():
        raise LoadError(f"{name} is empty")
    item = Input(
        data=data,
        name=name,
        stem=PurePath(name).stem or name,
        source=source,
        rows=RowOptions(text_field, id_field, tuple(metadata_fields or ())),
    )
    return loader(item)


def load_file(
    path: Path,
    *,
    source: str | None = None,
    text_field: str | None = None,
    id_field: str | None = None,
    metadata_fields: list[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[LoadedDocument]:
    """The documents in one file: one for a whole-file format, one per row for CSV/JSONL.

    ``source`` (default ``str(path)``) names the documents; when given, its last component
    also names the file in error messages, so a saved upload reports its original name.
    The format is chosen by the suffix of ``path``.
    """
    path = Path(path)
    name = PurePath(source).name if source else path.name
    name = name or str(path)
    if path.suffix.lower() not in _LOADERS:
        # Refuse before touching the disk.
        raise _unsupported(name, path.suffix)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise LoadError(f"{name} is a directory, not a file")
        if size > max_bytes:
            raise _too_large(name, max_bytes)
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise LoadError(f"{name}: file not found") from exc
    except OSError as exc:
        raise LoadError(f"{name}: cannot read file: {exc.strerror or reason(exc)}") from exc
    # The file may have grown between stat and read.
    if len(data) > max_bytes:
        raise _too_large(name, max_bytes)
    return _load(
        data,
        name=name,
        suffix=path.suffix,
        source=source or str(path),
        text_field=text_field,
        id_field=id_field,
        metadata_fields=metadata_fields,
    )


def load_bytes(
    data: bytes,
    filename: str,
    *,
    source: str | None = None,
    text_field: str | None = None,
    id_field: str | None = None,
    metadata_fields: list[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[LoadedDocument]:
    """Like :func:`load_file` for an upload's bytes; nothing is written to disk.

    ``source`` defaults to ``filename``; the format is chosen by its suffix.
    """
    name = PurePath(filename).name or filename
    if len(data) > max_bytes:
        raise _too_large(name, max_bytes)
    return _load(
        data,
        name=name,
        suffix=PurePath(filename).suffix,
        source=source or filename,
        text_field=text_field,
        id_field=id_field,
        metadata_fields=metadata_fields,
    )


def _matches(relative: PurePosixPath, pattern: str) -> bool:
    """Glob match against the relative path, any of its folders, or a bare file name.

    ``*`` crosses ``/`` here (fnmatch), so "drafts/**" covers the whole folder,
    "*.tmp.md" matches at any depth, and "**/x.md" also matches x.md at the top.
    """
    candidates = [relative.as_posix(), *(p.as_posix() for p in relative.parents if p.name)]
    patterns = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
    return any(fnmatchcase(c, p) for c in candidates for p in patterns) or (
        "/" not in pattern and fnmatchcase(relative.name, pattern)
    )


def iter_files(
    root: Path, *, include: list[str] | None = None, exclude: list[str] | None = None
) -> list[Path]:
    """The files to load under ``root``: itself if it is a file, else every supported file
    below it, sorted, without hidden files or folders, filtered by glob patterns on the
    path relative to ``root`` (``include`` default all, then ``exclude``).

    Paths come back absolute and resolved: a document is identified by its path, so
    ingesting ``./docs`` and later ``/srv/kb/docs`` (or from another working directory)
    must name the same files the same way, not add every document twice. Linked folders
    and files are followed; a file reached by two paths is listed once, under the first
    path in sorted order, and a dangling link is skipped."""
    root = Path(root).expanduser().resolve()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise LoadError(f"{root}: no such file or directory")
    found: list[tuple[str, Path]] = []
    visited = {os.path.realpath(root)}
    # Linked folders are followed like the others, each real folder once (a link back up
    # the tree is no loop).
    for folder, dirs, files in os.walk(root, followlinks=True):
        # Pruning in place keeps os.walk out of hidden folders (.git, .venv) entirely.
        kept = []
        for d in sorted(dirs):
            real = os.path.realpath(os.path.join(folder, d))
            if not d.startswith(".") and real not in visited:
                visited.add(real)
                kept.append(d)
        dirs[:] = kept
        for file_name in files:
            if file_name.startswith(".") or Path(file_name).suffix.lower() not in SUPPORTED:
                continue
            path = Path(folder, file_name)
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if include and not any(_matches(relative, p) for p in include):
                continue
            if exclude and any(_matches(relative, p) for p in exclude):
                continue
            found.append((relative.as_posix(), path))
    # A file reached twice (a link beside its target) is one document: the first path.
    out, seen = [], set()
    for _, path in sorted(found):
        real = os.path.realpath(path)
        if real not in seen and os.path.isfile(real):  # a dangling link is no file
            seen.add(real)
            out.append(path)
    return out
