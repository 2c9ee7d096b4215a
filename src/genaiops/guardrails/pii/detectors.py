"""Finding PII in text: candidates by regex, kept only when a validator accepts them.

``PIIDetector.detect`` owns the search. Every identifier with a check digit (cards, IBAN,
CPF, CNPJ, CURP, RFC, RUT, CUIT, NIT, RUC) is reported only when its check digit holds,
so order numbers, prices and dates with the right shape are not PII. Identifiers without
one (Argentine DNI, Colombian cédula, Peruvian DNI) count only right after a keyword that
names them ("DNI", "cédula", "C.C.", "documento"...), and so do the checksum shapes that
other numbers share: a person's NIT (a cédula plus check digit; a company's nine-digit
body needs no keyword) and a RUT under 1,000,000. Phone numbers written without a
country code count only in the groupings each country uses. Overlapping candidates resolve to the
longest; on the same span, to the kind a nearby keyword names, then the most specific.

Speed: each family is found by one regex whose first character is a digit (or by a cheap
hint such as "@" or a run of six digits), so a 2,000-character text costs a few hundred
microseconds; Python only looks at the candidates. Full-width digits, NBSP and Unicode
dashes are mapped one character to one character, so offsets index the caller's text.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

from genaiops.errors import ConfigError
from genaiops.guardrails.base import Span
from genaiops.guardrails.pii import validators as v
from genaiops.guardrails.pii.context import Context, identity_kind
from genaiops.guardrails.pii.phones import find_phones

ENTITY_KINDS: tuple[str, ...] = (
    "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "CPF", "CNPJ", "CURP", "RFC",
    "RUT", "DNI_AR", "CUIT", "CEDULA_CO", "NIT", "DNI_PE", "RUC", "RG",
)  # fmt: skip
# Eight bare digits after "DNI" with no country to tell an Argentine number from a Peruvian
# one are reported as "DNI" (see ``context.identity_kind``); asking for either country's
# DNI includes it.
AMBIGUOUS_DNI = "DNI"
DNI_COUNTRIES = ("AR", "PE")


def _ranges(table: dict[int, int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for code in sorted(table):
        if out and out[-1][1] == code - 1:
            out[-1] = (out[-1][0], code)
        else:
            out.append((code, code))
    return out


# One character to one character, so that offsets survive: full-width ASCII, other digit
# scripts, the spaces of word processors (NBSP, thin, figure) and Unicode dashes.
_TABLE: dict[int, int] = {
    **{0xFF01 + i: 0x21 + i for i in range(94)},
    **{base + i: 0x30 + i for base in (0x0660, 0x06F0, 0x0966) for i in range(10)},
    **dict.fromkeys((0x00A0, 0x2002, 0x2003, 0x2007, 0x2009, 0x200A, 0x202F, 0x3000), 0x20),
    **dict.fromkeys((0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2212, 0xFE63), 0x2D),
}
_NEEDS_TABLE = re.compile(
    "[" + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in _ranges(_TABLE)) + "]"
)

# A number starts where no letter or digit (nor a digit and a separator) precedes it and
# ends where none follows: "1.123.456.789-09" and "2024-12345678909" hold no CPF. Patterns
# begin with a plain character class and check what precedes it afterwards: a look-behind
# in first place would stop the regex engine from skipping ahead to the next digit.
_D = r"[0-9](?<![0-9A-Za-z].)(?<![0-9][.,/-].)"
_R = r"(?![0-9A-Za-z])(?![.,/-][0-9A-Za-z])"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    validator: str  # the name of the function in ``validators``, reported in the span
    pattern: re.Pattern[str]
    priority: int

    @property
    def check(self) -> Callable[[str], bool]:
        fn: Callable[[str], bool] = getattr(v, self.validator)
        return fn


# Checksum identifiers found by one regex each; the validator is ``validators.<name>``.
# Priorities break ties on one span by the strength of the check: two mod-11 digits (CNPJ,
# CPF) beat Luhn (cards, 1 in 10 random numbers pass), which beats one mod-11 digit.
_RULES: tuple[_Rule, ...] = tuple(
    _Rule(kind, name, re.compile(pattern), priority)
    for kind, name, pattern, priority in (
        ("CPF", "cpf", _D + r"[0-9]{2}([. ]?)[0-9]{3}\1[0-9]{3}[-. /]?[0-9]{2}" + _R, 60),
        ("CNPJ", "cnpj",
         _D + r"[0-9]([. ]?)[0-9]{3}\1[0-9]{3}[/ ]?[0-9]{4}[-. ]?[0-9]{2}" + _R, 61),
        # The CUIT and RUC prefixes (20, 23...; 10, 15...) are checked by their validators.
        ("CUIT", "cuit", _D + r"[0-9]([-. /]?)[0-9]{8}\1[0-9]" + _R, 53),
        # A bare "20..." can be both; Peruvians always write the RUC bare, Argentines
        # mostly hyphenate the CUIT, so the RUC reading wins unless a keyword says CUIT.
        ("RUC", "ruc", _D + r"[0-9]{10}" + _R, 54),
        ("RUT", "rut", _D + r"(?:[0-9]?\.[0-9]{3}\.[0-9]{3}|[0-9]{6,7}) ?- ?[0-9Kk]" + _R, 52),
        ("NIT", "nit", _D + r"[0-9]{2}([. ]?)[0-9]{3}\1[0-9]{3} ?- ?[0-9]" + _R, 52),
        ("IP_ADDRESS", "ip_address",
         r"[0-9](?<![0-9A-Za-z.].)[0-9]{0,2}\.(?:[0-9]{1,3}\.){2}[0-9]{1,3}(?![0-9A-Za-z]|\.[0-9])",
         50),
    )
)  # fmt: skip
# A four-part version, not an address: pinned ("numpy==1.26.4.0"), abbreviated ("ver.
# 1.0.0.2"), after a package's name ("libfoo-1.2.3.4", but "IP-10.0.0.7" is an address)
# or inside a file name ("setup 1.2.3.4.exe").
_PINNED = re.compile(r"(?:==|~=|(?<![Ii][Pp])(?<=[^\W\d_])-|(?<![^\W\d_])[Vv]er\. ?)$")
_FILE_SUFFIX = re.compile(r"\.[a-z]{2,4}(?![^\W\d_])")


def _software_version(norm: str, start: int, end: int) -> bool:
    return bool(_PINNED.search(norm, max(0, start - 8), start) or _FILE_SUFFIX.match(norm, end))


_CNPJ_ALNUM = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{3}/[0-9A-Z]{4}-[0-9]{2}" + _R
)
# The same written bare ("12ABC34501DE35"): a product code can look like that and pass
# the two check digits one time in a hundred, so only after the keyword "CNPJ".
_CNPJ_WORD = re.compile("cnpj", re.IGNORECASE)
_CNPJ_ALNUM_BARE = re.compile(r"(?<![0-9A-Za-z])(?=[0-9]*[A-Z])[0-9A-Z]{12}[0-9]{2}" + _R)
_CARD = re.compile(
    _D + r"(?:(?P<body>[0-9]{3}(?P<s>[ .-])[0-9]{4}(?P=s)[0-9]{4}(?P=s)[0-9]{4})"
    r"(?P<tail>(?P=s)[0-9]{3})?|[0-9]{3}(?P<a>[ -])[0-9]{6}(?P=a)[0-9]{4,5}|[0-9]{12,18})" + _R
)
# A card number written the way cards print it (4-4-4-4, Amex 4-6-5): not an order number.
_CARD_GROUPS = re.compile(r"[0-9]{4}(?: [0-9]{4}){3}|[0-9]{4} [0-9]{6} [0-9]{5}")
_IBAN = re.compile(
    r"[A-Z](?<![0-9A-Za-z].)[A-Z][0-9]{2}(?: ?[0-9A-Z]{4}){2,7}(?: ?[0-9A-Z]{1,4})?(?![0-9A-Za-z])"
)
_IBAN_LOWER = re.compile(
    r"[a-z](?<![0-9A-Za-z].)[a-z][0-9]{2}(?: ?[0-9A-Za-z]{4}){2,7}(?: ?[0-9A-Za-z]{1,4})?"
    r"(?![0-9A-Za-z])"
)
_IBAN_BEFORE = re.compile(r"[A-Z]{2}[0-9]{2}(?: [0-9A-Z]{4})* $")
_SIX_DIGITS = re.compile(r"[0-9][0-9]{5}")
_CURP = re.compile(
    r"(?<![0-9A-Za-zÑñ&])[A-Za-z]{4}[0-9]{6}[A-Za-z]{6}[0-9A-Za-z][0-9](?![0-9A-Za-z])"
)
# Separators, when used, are the same on both sides of the date ("GODE 561231 GR8").
_RFC = re.compile(
    r"(?<![0-9A-Za-zÑñ&])[A-Za-zÑñ&]{3,4}([ -]?)[0-9]{6}\1[0-9A-Za-z]{3}(?![0-9A-Za-zÑñ&])"
    r"(?![.,/-][0-9A-Za-z])"
)
_EMAIL_CHARS = r"\w!#$%&'*+/=?^`{|}~-"
_EMAIL = re.compile(
    rf"(?<![.{_EMAIL_CHARS}])[{_EMAIL_CHARS}]+(?:\.[{_EMAIL_CHARS}]+)*"
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])"
)
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?"
    r"(?![0-9A-Za-z:])"
)
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_HEX_COLON_RUN = re.compile(r"[0-9A-Fa-f:]*")
_CONTEXT_NUMBER = re.compile(
    _D + r"(?:[0-9]{0,2}(?:\.[0-9]{3}){1,4}|[0-9]{5,15})(?P<chk> ?- ?[0-9A-Za-z]|[Kk])?" + _R
)
_PHONE_PRIORITY = 30
_CONTEXT_PRIORITY = 45  # keyword-vouched identifiers beat a phone reading of the digits
_VALIDATORS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "NIT": ("nit", v.nit),
    "RUT": ("rut", v.rut),
    "DNI_AR": ("dni_ar", v.dni_ar),
    "DNI_PE": ("dni_pe", v.dni_pe),
    "DNI": ("dni", v.dni),
    "CEDULA_CO": ("cedula_co", v.cedula_co),
    "RG": ("rg", v.rg),
}


@dataclass(slots=True)
class Candidate:
    start: int
    end: int
    kind: str
    validator: str
    priority: int
    detail: dict[str, Any] = field(default_factory=dict)


def normalise(text: str) -> str:
    """``text`` with look-alike characters mapped to ASCII; same length, same offsets."""
    if text.isascii() or _NEEDS_TABLE.search(text) is None:
        return text  # the common case; translate() costs a dict look-up per character
    return text.translate(_TABLE)


class PIIDetector:
    """Finds the PII entities of ``entities`` (all of ``ENTITY_KINDS`` by default).

    ``keywords`` are extra words that vouch for an identifier without a check digit
    ("RG", "n.º de socio"...); ``dni_country`` ("AR" or "PE") names the country of a DNI
    the text does not place (default: report it as ``DNI``). Every family is searched
    whatever ``entities`` says, so that a CNPJ is not reported as a phone when only phones
    are asked for.
    """

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        keywords: Iterable[str] = (),
        dni_country: str | None = None,
    ):
        kinds = ENTITY_KINDS if entities is None else tuple(entities)
        unknown = sorted(set(kinds) - {*ENTITY_KINDS, AMBIGUOUS_DNI})
        if unknown:
            raise ConfigError(
                f"unknown PII entities {unknown}; known: {', '.join(ENTITY_KINDS)}",
                param="entities",
            )
        if dni_country is not None and dni_country not in DNI_COUNTRIES:
            raise ConfigError(
                f"dni_country must be one of {', '.join(DNI_COUNTRIES)}", param="dni_country"
            )
        if {"DNI_AR", "DNI_PE"} & set(kinds):
            kinds = (*kinds, AMBIGUOUS_DNI)
        self.entities = frozenset(kinds)
        self.dni_country = dni_country
        self._extra_keywords = tuple(k for k in keywords if k.strip())

    def detect(self, text: str) -> list[Span]:
        norm = normalise(text)
        ctx = Context(norm, self._extra_keywords)
        cands = list(_Scan(norm, ctx, self.dni_country).candidates())
        chosen = resolve(_apply_keywords(cands, ctx))
        return [
            Span(
                c.kind,
                c.start,
                c.end,
                text[c.start : c.end],
                {"validator": c.validator, **c.detail},
            )
            for c in chosen
            if c.kind in self.entities
        ]


@lru_cache(maxsize=1)
def default_detector() -> PIIDetector:
    """A shared detector for every entity kind (it holds no per-text state)."""
    return PIIDetector()


# Numbers that a keyword naming another identifier rules out.
_EXCLUSIVE = frozenset({"CPF", "CNPJ", "CUIT", "RUC", "RUT", "NIT", "CREDIT_CARD", "PHONE"})


def _apply_keywords(cands: list[Candidate], ctx: Context) -> list[Candidate]:
    """Use the keyword before each numeric identifier.

    A keyword that names another identifier rules a reading out: "CUIL 20245830243" is
    not a CPF even when the digits happen to pass the CPF check, and "DNI 68284687-9" not
    a Chilean RUT. Where several kinds claim one span, the one the keyword names is
    raised ("RUC 20512333797" is also a valid CUIT).
    """
    kinds: dict[tuple[int, int], set[str]] = {}
    for c in cands:
        kinds.setdefault((c.start, c.end), set()).add(c.kind)
    phones = [(c.start, c.end) for c in cands if c.kind == "PHONE"]

    def dialled(c: Candidate) -> bool:
        return any(a < c.end and c.start < b for a, b in phones)

    kept = []
    for c in cands:
        shared = len(kinds[(c.start, c.end)]) > 1
        if c.kind in _EXCLUSIVE or shared:
            hit = ctx.keyword(c.start)
            if hit is not None and hit.names_identifier and c.kind not in hit.vouches:
                # A phone word rules an identifier out only where the digits read as a
                # phone too: "celular 529.982.247-25" cannot be dialled, so it stays a CPF.
                if c.kind in _EXCLUSIVE and (not hit.phone or dialled(c)):
                    continue
            elif hit is not None and shared and c.kind in hit.vouches and c.priority < 100:
                c.priority += 100
        kept.append(c)
    return kept


def resolve(cands: list[Candidate]) -> list[Candidate]:
    """Non-overlapping candidates: longest first, then highest priority, then leftmost."""
    cands.sort(key=lambda c: (c.start - c.end, -c.priority, c.start))
    starts: list[int] = []
    ends: list[int] = []
    kept: list[Candidate] = []
    for c in cands:
        i = bisect_right(starts, c.start)
        # Kept spans never overlap, so sorted by start they are sorted by end too.
        if (i and ends[i - 1] > c.start) or (i < len(starts) and starts[i] < c.end):
            continue
        starts.insert(i, c.start)
        ends.insert(i, c.end)
        kept.append(c)
    kept.sort(key=lambda c: c.start)
    return kept


class _Scan:
    """One detection pass over a normalised text."""

    def __init__(self, norm: str, context: Context, dni_country: str | None = None):
        self.norm = norm
        self.ctx = context
        self.dni_country = dni_country

    def candidates(self) -> Iterator[Candidate]:
        yield from self._checksum_rules()
        yield from self._cards()
        if "@" in self.norm:
            yield from self._emails()
        yield from self._alphanumeric()
        if _IPV6_HINT.search(self.norm):
            yield from self._ipv6()
        yield from self._context_ids()
        for p in find_phones(self.norm, self.ctx):
            prio = _PHONE_PRIORITY + (100 if p.vouched else 0)
            yield Candidate(p.start, p.end, "PHONE", p.validator, prio, {"country": p.country})

    def _suppressed(self, start: int, value: str, kind: str, grouped: bool = False) -> bool:
        """A bare number right after "pedido", "invoice", "versión"... is not PII, even
        when it passes a checksum: an order number or an amount, not a card or a CPF.
        Unless the number is written as its kind is (a card in groups of four) or a
        keyword of its kind came earlier in the sentence ("mi CPF (ref) ...")."""
        if grouped or not value.replace(".", "").isdigit():
            return False
        hit = self.ctx.keyword(start)
        return hit is not None and hit.negative and not self.ctx.names_earlier(start, kind)

    def _checksum_rules(self) -> Iterator[Candidate]:
        norm = self.norm
        for rule in _RULES:
            check = rule.check
            for m in rule.pattern.finditer(norm):
                value = m.group()
                if check(value) and not self._suppressed(m.start(), value, rule.kind):
                    if rule.kind == "IP_ADDRESS" and _software_version(norm, m.start(), m.end()):
                        continue
                    yield Candidate(m.start(), m.end(), rule.kind, rule.validator, rule.priority)
        if "/" in norm:
            for m in _CNPJ_ALNUM.finditer(norm):
                if v.cnpj(m.group()):
                    yield Candidate(m.start(), m.end(), "CNPJ", "cnpj", 61)
        for m in _CNPJ_ALNUM_BARE.finditer(norm) if _CNPJ_WORD.search(norm) else ():
            if v.cnpj(m.group()) and self.ctx.names_earlier(m.start(), "CNPJ"):
                yield Candidate(m.start(), m.end(), "CNPJ", "cnpj", 61)

    def _cards(self) -> Iterator[Candidate]:
        norm = self.norm
        for m in _CARD.finditer(norm):
            end = m.end()
            if not v.credit_card(m.group()):
                # A 16-digit card followed by three more digits (a CVV, a year...).
                if m.group("tail") is None or not v.credit_card(m.group("body")):
                    continue
                end = m.end("body")
            if _IBAN_BEFORE.search(norm, max(0, m.start() - 40), m.start()):
                continue  # digits inside an IBAN-shaped chain ("ES12 4100 0418 ...")
            written = norm[m.start() : end]
            grouped = bool(_CARD_GROUPS.fullmatch(written))
            if not self._suppressed(m.start(), written.replace(" ", ""), "CREDIT_CARD", grouped):
                yield Candidate(m.start(), end, "CREDIT_CARD", "credit_card", 56)

    def _emails(self) -> Iterator[Candidate]:
        norm = self.norm
        # Only the neighbourhood of each "@" is searched: a local part is at most 64
        # characters and an address at most 254.
        windows: list[list[int]] = []
        at = norm.find("@")
        while at != -1:
            lo, hi = max(0, at - 65), min(len(norm), at + 256)
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = hi
            else:
                windows.append([lo, hi])
            at = norm.find("@", at + 1)
        for lo, hi in windows:
            for m in _EMAIL.finditer(norm, lo, hi):
                if v.email(m.group()):
                    yield Candidate(m.start(), m.end(), "EMAIL", "email", 60)

    def _alphanumeric(self) -> Iterator[Candidate]:
        norm = self.norm
        for m in _IBAN.finditer(norm):
            found = _iban_prefix(m.group())
            if found is not None:
                yield Candidate(m.start(), m.start() + found, "IBAN", "iban", 62)
        # Written in lower case ("gb82west1234..."): the same check on the upper-cased text.
        for m in _IBAN_LOWER.finditer(norm):
            value = m.group()
            if not value.isupper():
                found = _iban_prefix(value.upper())
                if found is not None:
                    yield Candidate(m.start(), m.start() + found, "IBAN", "iban", 62)
        # CURP and RFC both hold a six-digit date right after three or four letters.
        for m in _SIX_DIGITS.finditer(norm):
            p = m.start()
            if p < 3 or norm[p - 1].isdigit():
                continue
            curp = _CURP.match(norm, p - 4) if p >= 4 else None
            if curp is not None and v.curp(curp.group()):
                yield Candidate(curp.start(), curp.end(), "CURP", "curp", 59)
                continue
            for q in (p - 5, p - 4, p - 3):
                rfc = _RFC.match(norm, q) if q >= 0 else None
                if rfc is not None and v.rfc(rfc.group()):
                    yield Candidate(rfc.start(), rfc.end(), "RFC", "rfc", 57)
                    break

    def _ipv6(self) -> Iterator[Candidate]:
        norm = self.norm
        pos = 0
        while (hint := _IPV6_HINT.search(norm, pos)) is not None:
            lo = hint.start()
            while lo > 0 and hint.start() - lo < 40 and norm[lo - 1] in _HEX_COLON:
                lo -= 1
            m = _IPV6.match(norm, lo)
            if m is None:
                # Skip the whole run of hex digits and colons: an address is a whole run.
                run = _HEX_COLON_RUN.match(norm, hint.start())
                pos = run.end() if run is not None else hint.end()
                continue
            pos = m.end()
            if v.ip_address(m.group()) and not self._suppressed(m.start(), "0", "IP_ADDRESS"):
                yield Candidate(m.start(), m.end(), "IP_ADDRESS", "ip_address", 50)

    def _context_ids(self) -> Iterator[Candidate]:
        for m in _CONTEXT_NUMBER.finditer(self.norm):
            hit = self.ctx.keyword(m.start())
            if hit is None or not hit.context:
                continue
            chk = m.group("chk")
            if chk in ("k", "K") and hit.group != "RUT":
                continue  # only a RUT ends in a bare K ("rut 10000013k")
            number = m.group()[: len(m.group()) - len(chk)] if chk else m.group()
            check = chk[-1] if chk else None
            hint = partial(self.ctx.country_hint, m.start())
            kind = identity_kind(hit, number, check, hint, self.dni_country)
            if kind is None:
                continue
            name, is_valid = _VALIDATORS[kind]
            if is_valid(number.replace(".", "") + (check or "")):
                yield Candidate(m.start(), m.end(), kind, name, _CONTEXT_PRIORITY + 100)


def _iban_prefix(candidate: str) -> int | None:
    """Length of the valid IBAN at the start of ``candidate`` (which may have swallowed a
    following upper-case word), in characters of ``candidate``, or None."""
    code = v.compact(candidate)
    length = v.IBAN_LENGTHS.get(code[:2], len(code))
    if len(code) < length or not v.iban(code[:length]):
        return None
    seen = 0
    for i, ch in enumerate(candidate):
        if ch != " ":
            seen += 1
            if seen == length:
                return i + 1
    return None
