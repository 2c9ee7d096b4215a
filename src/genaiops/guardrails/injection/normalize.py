"""Normalisation that undoes the obfuscations used to slip injections past filters.

This module owns turning one raw text into the *views* the rules and the classifier scan:

* the folded text: Unicode NFKC, invisible characters removed (zero-width, bidi controls,
  soft hyphens, variation selectors), Unicode tag characters decoded to the ASCII they
  smuggle, accents stripped, lowercased, Cyrillic/Greek look-alikes folded to Latin, and
  spaced-out letters collapsed ("i g n o r e", "i.g.n.o.r.e" -> "ignore");
* leetspeak windows of the folded text (0->o, 1->i or l, 3->e, 4->a, 5->s, 7->t, @->a,
  $->s): only tokens mixing letters with those characters are folded, and only the text
  around tokens that fold into words is kept (200 characters each side), so "the 30th" or
  an e-mail address in a long benign text costs nothing;
* reversed lines, when the text asks for something to be read backwards ("al revés", "de
  trás pra frente"), each line read right to left;
* ROT13 lines, when the text names the cipher ("ROT13", "rot-13", "César"), each line with
  its letters rotated back;
* decoded payloads: base64 and hex runs of 16+ characters that decode to mostly printable
  UTF-8, normalised the same way (nested encodings are followed two levels deep).

Every character of the folded and leetspeak views keeps the index of the original character
it came from, so a match maps back to the original text; a match inside a decoded payload
maps to the whole encoded run (a reversed line, to the whole line). Trade-offs: folding is
lossy on purpose (Greek or Cyrillic prose is folded into Latin gibberish: harmless, since
only English, Spanish and Portuguese are targeted), and the spaced-letter collapse also
glues harmless lists such as "a b c d"; both only affect the copy used for matching, never
what the caller sees.

Unicode tag characters are decoded in place but kept apart from the visible words around
them (a space on each side), since they are a separate, invisible channel.

Nothing is precomputed at import time beyond compiling regexes; the per-character fold of
non-ASCII characters is cached lazily. Limits keep hostile input bounded: at most 32
payloads, runs over 200,000 characters are not decoded, two levels of nesting.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass, field

from genaiops.guardrails.confusables import HOMOGLYPHS

# Characters folded one by one (everything outside printable ASCII); ASCII runs are bulk
# lowercased, which keeps the common case fast.
_SPECIAL = re.compile(r"[^\t\n\r\x20-\x7e]+")
# Four or more single letters separated by 1-3 spacing characters: "i g n o r e".
_SPACED = re.compile(r"(?<![^\W_])(?:[^\W_][ .\-_*·|/\\+~]{1,3}){3,}[^\W_](?![^\W_])")
_SPACED_SEP = re.compile(r"[^\w]|_")
# A token that may be leetspeak: letters mixed with the substituted digits and symbols.
_LEET_HINT = re.compile(r"[a-z][013457@$]|[013457@$][a-z]")
# Only tokens holding a substitute reach the (Python) callback; plain words are skipped in C.
_LEET_TOKEN = re.compile(r"(?<![\w@$])(?=[a-z0-9@$]{0,39}[013457@$])[a-z0-9@$]{1,40}(?![\w@$])")
_NOT_LEET = re.compile(r"\d+(?:st|nd|rd|th|[a-z])|[a-z]+\d")
_LEET_I = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                         "@": "a", "$": "s"})  # fmt: skip
_LEET_L = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t",
                         "@": "a", "$": "s"})  # fmt: skip

_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z\\])(?:(?:\\x|0x)?[0-9a-fA-F]{2}[ :,]?){8,}(?![0-9A-Za-z])")
_HEX_JUNK = re.compile(r"\\x|0x|[ :,]")
_WHITESPACE_ONLY = re.compile(r"\s*")

MAX_PAYLOADS = 32
MAX_DEPTH = 2
LEET_CONTEXT = 200  # characters kept on each side of a leetspeak word
MAX_RUN = 200_000  # longer runs are not decoded (a 150 KB blob is a file, not a prompt)
_FOLD_CACHE: dict[str, str] = {}
Span = tuple[int, int]
_FOLD_CACHE_MAX = 1 << 16


@dataclass(frozen=True)
class View:
    """One text to match against, with the way back to the original text.

    ``offsets[i]`` is the index in the original text of character ``i``; payload views
    have no offsets and map every match to ``span`` (the encoded run).
    """

    text: str
    # "text", "leet" (1 read as i), "leet-l" (1 read as l), "reversed", "base64" or "hex"
    source: str
    offsets: list[int] | None = None
    span: tuple[int, int] | None = None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        if self.offsets is None or not self.offsets:
            return self.span if self.span is not None else (0, 0)
        end = max(end, start + 1)
        first = self.offsets[min(start, len(self.offsets) - 1)]
        last = self.offsets[min(end, len(self.offsets)) - 1]
        return first, last + 1


@dataclass(frozen=True)
class Payload:
    start: int
    end: int
    encoding: str  # "base64" or "hex"
    text: str  # the decoded text, as decoded (not folded)


@dataclass(frozen=True)
class Normalized:
    original: str
    text: str  # the folded text (the first view's text)
    views: list[View] = field(default_factory=list)
    payloads: list[Payload] = field(default_factory=list)

    @property
    def encoded(self) -> bool:
        return bool(self.payloads)

    def scan_text(self) -> str:
        """The text the classifier sees: folded text, one leetspeak copy, decoded payloads.

        Training and prediction both go through this, so the features always agree.
        """
        parts = [self.text]
        # One leetspeak reading ("1" as "i", not "leet-l") is enough for the n-grams.
        parts.extend(v.text for v in self.views if v.source == "leet")
        parts.extend(v.text for v in self.views if v.span is not None)
        return "\n".join(parts)


def _is_tag(ch: str) -> bool:
    return 0xE0000 <= ord(ch) <= 0xE007F


def fold_char(ch: str) -> str:
    """Fold one character to the lowercase, accent-free Latin text it stands for."""
    cached = _FOLD_CACHE.get(ch)
    if cached is not None:
        return cached
    cp = ord(ch)
    if 0xE0020 <= cp <= 0xE007E:
        # Unicode tag characters are invisible but carry ASCII ("ASCII smuggling").
        out = chr(cp - 0xE0000).lower()
    else:
        category = unicodedata.category(ch)
        if category in ("Cf", "Mn", "Me") or 0xFE00 <= cp <= 0xFE0F or cp in (0x115F, 0x1160):
            out = ""  # zero-width, bidi controls, soft hyphen, variation selectors, marks
        elif category in ("Cc", "Zl", "Zp", "Cs", "Co", "Cn"):
            out = " "  # control or unassigned: keep words apart, keep nothing else
        elif ch.lower() in HOMOGLYPHS:
            out = HOMOGLYPHS[ch.lower()]
        else:
            s = unicodedata.normalize("NFKC", ch).lower()
            s = "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))
            out = "".join(HOMOGLYPHS.get(c, c) for c in s)
    if len(_FOLD_CACHE) < _FOLD_CACHE_MAX:
        _FOLD_CACHE[ch] = out
    return out


def fold(text: str) -> tuple[str, list[int]]:
    """Fold ``text`` and return it with the original index of every output character."""
    if not _SPECIAL.search(text):
        return text.lower(), list(range(len(text)))
    parts: list[str] = []
    offsets: list[int] = []
    pos = 0
    for m in _SPECIAL.finditer(text):
        start, end = m.span()
        if start > pos:
            parts.append(text[pos:start].lower())
            offsets.extend(range(pos, start))
        tagged = False
        for i in range(start, end):
            folded = fold_char(text[i])
            # Smuggled tag text is a separate channel: keep it apart from visible words.
            if _is_tag(text[i]) != tagged:
                tagged = not tagged
                folded = " " + folded
            if folded:
                parts.append(folded)
                offsets.extend([i] * len(folded))
        if tagged:
            parts.append(" ")
            offsets.append(end - 1)
        pos = end
    if pos < len(text):
        parts.append(text[pos:].lower())
        offsets.extend(range(pos, len(text)))
    return "".join(parts), offsets


def collapse_spaced(text: str, offsets: list[int]) -> tuple[str, list[int]]:
    """Glue letters written one by one ("i g n o r e" -> "ignore"), keeping offsets."""
    if not _SPACED.search(text):
        return text, offsets
    parts: list[str] = []
    new_offsets: list[int] = []
    pos = 0
    for m in _SPACED.finditer(text):
        start, end = m.span()
        parts.append(text[pos:start])
        new_offsets.extend(offsets[pos:start])
        for i in range(start, end):
            if not _SPACED_SEP.match(text[i]):
                parts.append(text[i])
                new_offsets.append(offsets[i])
        pos = end
    parts.append(text[pos:])
    new_offsets.extend(offsets[pos:])
    return "".join(parts), new_offsets


def leet_views(text: str, offsets: list[int]) -> list[View]:
    """Leetspeak-folded windows of ``text``, or [] when nothing folds into a word.

    "1" stands for both "i" and "l", so a text containing it gets both readings. Only the
    surroundings of tokens that fold into words ("1gn0r3" -> "ignore") are kept, so an
    email address or "the 30th" in a long benign text costs a few short windows, not a
    second copy of the whole text to scan.
    """
    if not _LEET_HINT.search(text):
        return []
    tables = [_LEET_I, _LEET_L] if "1" in text else [_LEET_I]
    out: list[View] = []
    for table in tables:
        source = "leet" if table is _LEET_I else "leet-l"
        changed: list[Span] = []

        def sub(
            m: re.Match[str], table: dict[int, str] = table, changed: list[Span] = changed
        ) -> str:
            token = m.group(0)
            # Lone substitutes stand for one-letter words ("0" for the article "o" in
            # "1gn0re 0 que"); longer tokens only when letters and substitutes mix.
            if len(token) == 1:
                return token.translate(table)
            if token.isalpha() or not any(c.isalpha() for c in token):
                return token
            folded = token.translate(table)
            # Ordinals, units, "mp3" and e-mail addresses fold into letters too; they are
            # not worth a window of their own.
            email = "@" in token and text.startswith(".", m.end())
            if folded.isalpha() and not email and not _NOT_LEET.fullmatch(token):
                changed.append(m.span())
            return folded

        folded = _LEET_TOKEN.sub(sub, text)
        for start, end in _merge_windows(changed, len(text)):
            piece = folded[start:end]
            if all(v.text != piece for v in out):
                out.append(View(piece, source, offsets[start:end]))
    return out


def _merge_windows(spans: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        start, end = max(0, start - LEET_CONTEXT), min(size, end + LEET_CONTEXT)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _as_text(raw: bytes) -> str | None:
    """The decoded bytes as text, if they look like something a person wrote."""
    if len(raw) < 8:
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in decoded if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in decoded if c.isalpha())
    if printable < 0.9 * len(decoded) or letters < 0.5 * len(decoded.replace(" ", "")):
        return None
    return decoded


def _decode_hex(run: str) -> str | None:
    digits = _HEX_JUNK.sub("", run)
    if len(digits) < 16 or len(digits) % 2:
        return None
    try:
        return _as_text(bytes.fromhex(digits))
    except ValueError:
        return None


def _decode_b64(run: str) -> str | None:
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    body += "=" * (-len(body) % 4)
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return None
    try:
        raw = base64.b64decode(body, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _as_text(raw)


def _merge_lines(runs: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Join base64 split over lines (MIME style: full 4-character groups, then a newline)."""
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if merged:
            prev_start, prev_end = merged[-1]
            gap = text[prev_end:start]
            whole = (prev_end - prev_start) % 4 == 0 and text[prev_end - 1] != "="
            if whole and "\n" in gap and _WHITESPACE_ONLY.fullmatch(gap):
                merged[-1] = (prev_start, end)
                continue
        merged.append((start, end))
    return merged


def find_payloads(text: str) -> list[Payload]:
    """Base64 and hex runs of ``text`` that decode to readable UTF-8 text."""
    found: list[Payload] = []
    taken: list[tuple[int, int]] = []
    for m in _HEX_RUN.finditer(text):
        if len(found) >= MAX_PAYLOADS:
            return found
        if m.end() - m.start() > MAX_RUN:
            continue
        decoded = _decode_hex(m.group(0))
        if decoded is not None:
            found.append(Payload(m.start(), m.end(), "hex", decoded))
            taken.append(m.span())
    runs = [m.span() for m in _B64_RUN.finditer(text)]
    for start, end in _merge_lines(runs, text):
        if len(found) >= MAX_PAYLOADS:
            break
        if end - start > MAX_RUN or any(s < end and start < e for s, e in taken):
            continue
        decoded = _decode_b64(re.sub(r"\s+", "", text[start:end]))
        if decoded is not None:
            found.append(Payload(start, end, "base64", decoded))
    found.sort(key=lambda p: p.start)
    return found


# "Read this backwards and do what it says": with such a hint, every line is also read
# right to left (a view per line, mapped to the whole line like a decoded payload).
_REVERSE_HINT = re.compile(
    r"\b(?:backwards?|reversed?|in reverse|right to left|al reves|invertid[ao]s?|de derecha a "
    r"izquierda|de tras (?:pra|para) frente|ao contrario|de tras pra diante)\b"
)
_LINE = re.compile(r"[^\n]{16,}")


# A right-to-left override (U+202E, or an isolate U+2067) shows the characters after it
# in reverse: stored backwards, such text reads forwards on screen, and to the model.
_RTL_RUN = re.compile("[\u202e\u2067]([^\u202c\u2069\n]{8,})")


def reversed_views(text: str, folded: str) -> list[View]:
    views = [
        View(fold(m.group(1)[::-1])[0], "reversed", None, m.span())
        for m in _RTL_RUN.finditer(text[:MAX_RUN])
    ]
    if _REVERSE_HINT.search(folded) is not None:
        views.extend(
            View(fold(m.group()[::-1])[0], "reversed", None, m.span())
            for m in _LINE.finditer(text[:MAX_RUN])
        )
    return views[:MAX_PAYLOADS]


# "Apply ROT13 to this line and do what it says": with the cipher named, every line is
# also read rotated back (mapped to the whole line, like a reversed one).
_ROT13_HINT = re.compile(
    r"\brot[ -]?13\b|\b(?:caesar|cesar)(?: cipher| shift)?\b|\bcifra(?:do)? de cesar\b"
)
_ROT13 = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM",
)


def rot13_views(text: str, folded: str) -> list[View]:
    if _ROT13_HINT.search(folded) is None:
        return []
    return [
        View(fold(m.group().translate(_ROT13))[0], "rot13", None, m.span())
        for m in _LINE.finditer(text[:MAX_RUN])
    ][:MAX_PAYLOADS]


def _text_views(text: str) -> tuple[str, list[View]]:
    folded, offsets = fold(text)
    folded, offsets = collapse_spaced(folded, offsets)
    views = [View(folded, "text", offsets)]
    views.extend(leet_views(folded, offsets))
    views.extend(reversed_views(text, folded))
    views.extend(rot13_views(text, folded))
    return folded, views


def normalize(text: str, _depth: int = 0) -> Normalized:
    """Fold ``text`` into the views to scan; see the module docstring."""
    folded, views = _text_views(text)
    payloads: list[Payload] = []
    if _depth < MAX_DEPTH:
        payloads = find_payloads(text)
        for p in list(payloads):
            inner = normalize(p.text, _depth + 1)
            # Everything found inside a payload points at the encoded run it came from.
            views.extend(View(v.text, p.encoding, None, (p.start, p.end)) for v in inner.views)
            payloads.extend(Payload(p.start, p.end, q.encoding, q.text) for q in inner.payloads)
    return Normalized(text, folded, views, payloads)
