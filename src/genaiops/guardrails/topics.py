"""Banned terms and topics: a deployment's own list of words, phrases or topics (each a
list of keywords) that must not appear, matched as whole words on folded text: case, accents
(precomposed or combining), compatibility forms, look-alike letters and invisible
characters are folded, and letters written one by one are glued ("p-i-s-t-o-l-a"), so
"armas" also matches "ARMAS", "ármas" and "аrmas" with a Cyrillic "а". Spans point into
the original text. Without configured terms it never flags.
Options: ``{"terms": [...], "topics": {"weapons": ["arma", "pistola"], ...}}``.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping
from typing import Any

from genaiops.guardrails.base import GuardResult, Span
from genaiops.guardrails.injection.normalize import collapse_spaced, fold


def _pattern(words: list[str]) -> re.Pattern[str] | None:
    cleaned = sorted({fold(w)[0].strip() for w in words if w and w.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in cleaned)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


# A policy is the deployment's list, not a dictionary: its size bounds the time one
# check holds the interpreter (a regex never lets go of it) for every tenant.
MAX_TERMS = 2000
MAX_TERM_CHARS = 200
MAX_TOPICS = 100


def _check_size(terms: Any, topics: Any) -> None:
    if not isinstance(terms, list) or not isinstance(topics, Mapping):
        raise ValueError("terms is a list of strings and topics a table of lists")
    if len(topics) > MAX_TOPICS:
        raise ValueError(f"at most {MAX_TOPICS} topics")
    words = list(terms)
    for keywords in topics.values():
        if not isinstance(keywords, list):
            raise ValueError("each topic is a list of keywords")
        words += keywords
    if len(words) > MAX_TERMS:
        raise ValueError(f"at most {MAX_TERMS} terms and topic keywords in all")
    if any(not isinstance(w, str) or len(w) > MAX_TERM_CHARS for w in words):
        raise ValueError(f"terms are strings of at most {MAX_TERM_CHARS} characters")


class BannedTermsGuard:
    deterministic = True  # the same text, the same result: results may be remembered
    name = "banned_terms"

    def __init__(self, options: Mapping[str, Any] | None = None):
        options = dict(options or {})
        unknown = set(options) - {"terms", "topics"}
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}")
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        terms = options.get("terms") or []
        _check_size(terms, options.get("topics") or {})
        compiled = _pattern(list(terms))
        if compiled is not None:
            self._rules.append(("banned_term", compiled))
        for topic, keywords in (options.get("topics") or {}).items():
            compiled = _pattern(list(keywords))
            if compiled is not None:
                self._rules.append((f"topic:{topic}", compiled))

    def check(self, text: str) -> GuardResult:
        started = time.perf_counter()
        folded, offsets = collapse_spaced(*fold(text))
        spans = []
        for kind, pattern in self._rules:
            for match in pattern.finditer(folded):
                # Each folded character knows the original one it came from.
                start = offsets[match.start()]
                end = offsets[match.end() - 1] + 1
                # Marks combining with the last letter belong to the word.
                while end < len(text) and unicodedata.combining(text[end]):
                    end += 1
                spans.append(Span(kind, start, end, text[start:end]))
        kinds = sorted({s.kind for s in spans})
        return GuardResult(
            guard=self.name,
            flagged=bool(spans),
            score=1.0 if spans else 0.0,
            spans=spans,
            latency_ms=(time.perf_counter() - started) * 1000,
            reason=", ".join(kinds) if kinds else None,
        )
