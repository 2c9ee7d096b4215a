"""Lexical normalisation shared by indexing and querying: Unicode compatibility
decomposition, diacritics folded (``canción`` = ``cancion``, ``ação`` = ``acao``), lower
case, word tokens, and a light plural stripping that helps Spanish, Portuguese and English
alike without a language-specific stemmer. FTS5 then ranks with BM25 over these terms."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

_WORD = re.compile(r"\w+", re.UNICODE)

# Too common to carry meaning in a query; dropped from queries only (not from the index).
_QUERY_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "de", "del", "do", "does", "el", "en"}
    | {"es", "for", "from", "how", "in", "is", "it", "la", "las", "los", "me", "mi", "o"}
    | {"of", "on", "or", "os", "para", "por", "que", "qual", "quais", "se", "the", "this"}
    | {"to", "um", "uma", "un", "una", "what", "which", "who", "why", "y", "e", "com"}
    | {"como", "em", "na", "no", "nas", "nos", "ao", "aos", "sobre", "tem"}
)


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _stem(token: str) -> str:
    if len(token) > 4 and token.endswith("s") and not token.endswith("ss"):
        return token[:-1]
    return token


def terms(text: str) -> list[str]:
    return [_stem(t) for t in _WORD.findall(fold(text))]


def index_text(text: str, term: Callable[[str], str]) -> str:
    """What goes into the FTS5 column: the terms, each passed through ``term`` (identity,
    or a keyed hash when the collection is encrypted)."""
    return " ".join(term(t) for t in terms(text))


def match_query(text: str, term: Callable[[str], str]) -> str | None:
    """An FTS5 MATCH expression: any of the query's meaningful terms (BM25 ranks documents
    with more and rarer matches first). None when the query has no usable term."""
    found = terms(text)
    meaningful = [t for t in found if t not in _QUERY_STOPWORDS] or found
    unique = list(dict.fromkeys(meaningful))[:64]
    if not unique:
        return None
    return " OR ".join(f'"{term(t)}"' for t in unique)
