"""Banned terms and topics: a deployment's own list of words, phrases or topics (each a
list of keywords) that must not appear, matched as whole words on accent- and case-folded
text (so "armas" also matches "ARMAS" and "ármas"). Without configured terms it never
flags. Options: ``{"terms": [...], "topics": {"weapons": ["arma", "pistola"], ...}}``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from genaiops.guardrails.base import GuardResult, Span
from genaiops.rag.lexical import fold


def _pattern(words: list[str]) -> re.Pattern[str] | None:
    cleaned = sorted({fold(w).strip() for w in words if w and w.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in cleaned)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


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
        compiled = _pattern(list(terms))
        if compiled is not None:
            self._rules.append(("banned_term", compiled))
        for topic, keywords in (options.get("topics") or {}).items():
            compiled = _pattern(list(keywords))
            if compiled is not None:
                self._rules.append((f"topic:{topic}", compiled))

    def check(self, text: str) -> GuardResult:
        started = time.perf_counter()
        folded = fold(text)
        # Folding can change lengths (e.g. ligatures); only then fall back to no offsets.
        aligned = len(folded) == len(text)
        spans = []
        for kind, pattern in self._rules:
            for match in pattern.finditer(folded):
                start, end = (match.start(), match.end()) if aligned else (0, len(text))
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
