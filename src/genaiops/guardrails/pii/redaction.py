"""What to do with detected PII: mask it, hash it, or vault it and put it back later.

``mask`` replaces each span with ``<KIND_n>``, numbered per kind in order of appearance;
the same value (compared in canonical form, so "123.456.789-09" and "12345678909" are one
CPF) gets the same placeholder. ``hash_spans`` replaces it with ``<KIND:xxxxxxxxxx>``, the
first 10 hex digits of HMAC-SHA256 under a caller's key: stable across requests, so logs
can be joined without holding the value, and not reversible without the key (a bare hash
of a CPF is: there are only 10^9 of them).

``Vault`` is the reversible form, one per request: it masks what goes to the model and
restores the originals in the model's answer, whole (``restore``) or streamed
(``StreamingRestorer``). Every text of the request (each message, retrieved chunks, the
answer) is masked with the same vault, so a placeholder names one value in the whole
request. Only the caller's own values are kept for restoring (``keep=True``); values
masked elsewhere (in retrieved documents, or leaked by the model in its answer) get
placeholders of the same numbering that no restore ever maps. Placeholders already
present in the caller's text are never reused (``reserve``), so a user who types
"<EMAIL_1>" does not get someone's address back; unknown placeholders in the answer are
left as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from genaiops.errors import ConfigError
from genaiops.guardrails.base import Span
from genaiops.guardrails.pii.detectors import PIIDetector, default_detector
from genaiops.guardrails.pii.validators import compact, digits_of, same_phone

PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*)_([0-9]+)>")
HASH_HEX = 10


def canonical(kind: str, value: str) -> str:
    """The form two spellings of one value share."""
    if kind == "EMAIL":
        return value.strip().lower()
    if kind == "PHONE":
        return digits_of(value)
    return compact(value)


def _replace(text: str, spans: Iterable[Span], make: Callable[[Span], str]) -> str:
    parts: list[str] = []
    pos = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < pos:  # overlapping spans: the first one wins
            continue
        parts += (text[pos : span.start], make(span))
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)


class _Numbering:
    """Per-kind placeholder numbers; one placeholder per distinct value."""

    def __init__(self) -> None:
        self.by_value: dict[tuple[str, str], str] = {}
        self.originals: dict[str, str] = {}
        self._next: dict[str, int] = {}

    def placeholder(self, span: Span, reserved: frozenset[str] | set[str]) -> str:
        key = (span.kind, canonical(span.kind, span.text))
        known = self.by_value.get(key)
        if known is not None:
            return known
        n = self._next.get(span.kind, 1)
        while (token := f"<{span.kind}_{n}>") in reserved:
            n += 1
        self._next[span.kind] = n + 1
        self.by_value[key] = token
        self.originals[token] = span.text
        return token


def _reserved(text: str) -> frozenset[str]:
    return frozenset(m.group() for m in PLACEHOLDER.finditer(text)) if "<" in text else frozenset()


def mask(text: str, spans: Iterable[Span]) -> str:
    """``text`` with every span replaced by ``<KIND_n>``."""
    numbering = _Numbering()
    reserved = _reserved(text)
    return _replace(text, spans, lambda s: numbering.placeholder(s, reserved))


def hash_spans(text: str, spans: Iterable[Span], key: bytes | str) -> str:
    """``text`` with every span replaced by ``<KIND:`` + 10 hex of HMAC-SHA256 + ``>``."""
    secret = key.encode() if isinstance(key, str) else key
    if not secret:
        raise ConfigError("the PII hash action needs a non-empty key", param="key")

    def make(span: Span) -> str:
        value = canonical(span.kind, span.text).encode()
        digest = hmac.new(secret, value, hashlib.sha256).hexdigest()[:HASH_HEX]
        return f"<{span.kind}:{digest}>"

    return _replace(text, spans, make)


def redact(
    text: str,
    spans: Iterable[Span],
    action: Literal["mask", "hash"] = "mask",
    key: bytes | str | None = None,
) -> str:
    if action == "mask":
        return mask(text, spans)
    if action == "hash":
        return hash_spans(text, spans, key or b"")
    raise ConfigError(f"unknown PII action {action!r}; use 'mask' or 'hash'", param="action")


def restore(text: str, originals: Mapping[str, str]) -> str:
    """Put known placeholders back; unknown ones stay as they are."""
    if "<" not in text or not originals:
        return text
    return PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)


class Vault:
    """Reversible masking for one request: ``mask`` what the model sees, ``restore`` its
    answer. Numbering is shared by every text masked with the same vault; only values
    masked with ``keep=True`` (the caller's own) are restored."""

    def __init__(self, detector: PIIDetector | None = None):
        self._detector = detector
        self._numbering = _Numbering()
        # Placeholder -> original value, for the values that are the caller's to get back.
        self._kept: dict[str, str] = {}
        self._reserved: set[str] = set()
        # Values the caller may read elsewhere (retrieved chunks of its own collections,
        # shown in citations too): (kind, canonical value). Never restored, never listed.
        self._visible: set[tuple[str, str]] = set()

    @property
    def detector(self) -> PIIDetector:
        if self._detector is None:
            self._detector = default_detector()
        return self._detector

    def reserve(self, text: str) -> None:
        """Never hand out a placeholder that ``text`` (the caller's) already contains."""
        self._reserved |= _reserved(text)

    def mask(self, text: str, *, keep: bool = True) -> str:
        return self.mask_spans(text, self.detector.detect(text), keep=keep)

    def mask_spans(self, text: str, spans: Iterable[Span], *, keep: bool = True) -> str:
        """``text`` with every span replaced by its placeholder; with ``keep`` the originals
        are restored in the answer, without it the placeholders stay masked for good."""
        reserved = self._reserved | _reserved(text)

        def make(span: Span) -> str:
            token = self._numbering.placeholder(span, reserved)
            if keep:
                self._kept.setdefault(token, self._numbering.originals[token])
            return token

        return _replace(text, spans, make)

    def see(self, text: str) -> None:
        """Count the values in ``text`` as ones the caller can already read (a retrieved
        chunk given to the model unmasked), so an answer that repeats them is no leak."""
        for span in self.detector.detect(text):
            kind = span.kind.upper()
            self._visible.add((kind, canonical(kind, span.text)))

    def owns(self, span: Span) -> bool:
        """Whether ``span`` holds one of the caller's own values: kept (sent by it) or
        visible to it (in the sources it was given)."""
        kind = span.kind.upper()
        value = (kind, canonical(kind, span.text))
        if value in self._visible:
            return True
        # One phone number written with and without its country code.
        if kind == "PHONE" and same_phone(value[1], (s for k, s in self._visible if k == kind)):
            return True
        token = self._numbering.by_value.get(value)
        return token is not None and token in self._kept

    def restore(self, text: str) -> str:
        return restore(text, self._kept)

    def restorer(self) -> StreamingRestorer:
        return StreamingRestorer(self._kept)

    @property
    def placeholders(self) -> dict[str, str]:
        """Placeholder -> original value of the kept values (a copy)."""
        return dict(self._kept)

    def __len__(self) -> int:
        return len(self._kept)

    def __bool__(self) -> bool:
        return bool(self._kept)


class StreamingRestorer:
    """Restores placeholders in a streamed answer, chunk by chunk.

    ``feed`` returns at once everything that cannot be the start of a placeholder cut by
    the chunk boundary; only a tail such as ``<CP`` or ``<CPF_1`` that is a proper prefix
    of a known placeholder is held back. ``flush`` returns what is left at the end.
    """

    def __init__(self, originals: Mapping[str, str]):
        self._originals = originals
        self._pending = ""

    def feed(self, chunk: str) -> str:
        buf = self._pending + chunk
        self._pending = ""
        cut = buf.rfind("<")
        if cut != -1 and self._is_partial(buf[cut:]):
            buf, self._pending = buf[:cut], buf[cut:]
        return restore(buf, self._originals)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return rest

    def _is_partial(self, tail: str) -> bool:
        return any(len(tail) < len(k) and k.startswith(tail) for k in self._originals)
