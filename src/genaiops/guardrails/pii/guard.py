"""The ``pii`` guard: ``PIIDetector`` behind the Guard protocol.

Options (from the policy): ``entities``, a list of ``ENTITY_KINDS`` or None for all, and
``keywords``, extra words that vouch for identity numbers without a check digit, and
``dni_country`` ("AR" or "PE"), the country of a DNI the text does not place (without it
such a number is reported as ``DNI``), and ``allow``, values that are never reported: the
organisation's own public contacts ("soporte@acme.com", "0800 123 4567") as exact values,
matched in any spelling (case, separators, a phone with or without its country code), or
as patterns with ``*`` and ``?`` ("*@acme.com"). The guard only reports; masking or
blocking is the policy's decision (see ``redaction``).
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from genaiops.errors import ConfigError
from genaiops.guardrails.base import GuardResult, Span
from genaiops.guardrails.pii.detectors import PIIDetector
from genaiops.guardrails.pii.validators import MIN_PHONE_MATCH, compact, digits_of, same_phone

_OPTIONS = frozenset({"entities", "keywords", "dni_country", "allow"})
# Every entity has a digit, an "@" (e-mail) or a ":" (IPv6) in it, in ASCII or in one of
# the look-alikes the detector folds (full-width forms, other digit scripts).
_MAY_HOLD_PII = re.compile(r"[\d@:＠：]")


class PIIGuard:
    deterministic = True  # the same text, the same result: results may be remembered
    name = "pii"
    # Values live inside words, so streamed answers are checked a word at a time.
    streaming_unit = "word"
    # Its spans are whole values: masking them removes what was found (a redacted text may
    # go on, retrieved chunks included), and it is cheap enough to read all of a long text.
    finds_values = True

    def __init__(self, options: Mapping[str, Any] | None = None):
        options = dict(options or {})
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigError(f"unknown options for the pii guard: {unknown}", param="options")
        entities = options.get("entities")
        keywords = options.get("keywords") or []
        if entities is not None and not _is_str_list(entities):
            raise ConfigError("pii guard: 'entities' must be a list of names", param="entities")
        if not _is_str_list(keywords):
            raise ConfigError("pii guard: 'keywords' must be a list of words", param="keywords")
        dni_country = options.get("dni_country")
        if dni_country is not None and not isinstance(dni_country, str):
            raise ConfigError("pii guard: 'dni_country' must be AR or PE", param="dni_country")
        allow = options.get("allow") or []
        if not _is_str_list(allow):
            raise ConfigError(
                "pii guard: 'allow' must be a list of values or patterns", param="allow"
            )
        self.detector = PIIDetector(entities, keywords, dni_country)
        self.allow = Allowlist(allow)

    def may_flag(self, text: str) -> bool:
        """False when ``text`` cannot hold any PII value (checking it would be wasted)."""
        return _MAY_HOLD_PII.search(text) is not None

    def check(self, text: str) -> GuardResult:
        t0 = time.perf_counter()
        spans = self.detector.detect(text)
        if self.allow:
            spans = [s for s in spans if not self.allow.covers(s)]
        kinds = list(dict.fromkeys(s.kind for s in spans))
        return GuardResult(
            guard=self.name,
            flagged=bool(spans),
            score=1.0 if spans else 0.0,
            spans=spans,
            latency_ms=(time.perf_counter() - t0) * 1000,
            reason=f"PII: {', '.join(kinds)}" if kinds else None,
        )


class Allowlist:
    """Values a policy declares public. Exact entries match any spelling of the value of
    the same kind: an e-mail case-insensitively, a phone with or without its country code,
    an identifier with or without its separators. Entries with ``*``, ``?`` or ``[`` are
    case-insensitive glob patterns on the value as written."""

    def __init__(self, entries: Iterable[str]):
        entries = [e.strip() for e in entries if e.strip()]
        self._globs = [e.lower() for e in entries if any(c in e for c in "*?[")]
        exact = [e for e in entries if e.lower() not in self._globs]
        self._texts = {e.lower() for e in exact}
        self._compact = {c for e in exact if "@" not in e and (c := compact(e))}
        self._phones = {d for e in exact if len(d := digits_of(e)) >= MIN_PHONE_MATCH}

    def __bool__(self) -> bool:
        return bool(self._globs or self._texts)

    def covers(self, span: Span) -> bool:
        value = span.text.strip().lower()
        if value in self._texts or any(fnmatch.fnmatchcase(value, g) for g in self._globs):
            return True
        kind = span.kind.upper()
        if kind == "EMAIL":
            return False
        if kind == "PHONE":
            return same_phone(digits_of(value), self._phones)
        return compact(value) in self._compact


def _is_str_list(value: object) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(x, str) for x in value)
