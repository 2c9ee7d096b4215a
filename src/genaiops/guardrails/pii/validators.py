"""Check-digit and structure validators for the identifiers the PII guard reports.

Each function takes a candidate as found in text (separators allowed where the country uses
them) and answers True only when the official check digit, or for identifiers without one
the official structure, holds. They are pure and cheap: the detector calls them on every
regex candidate, so a random number that merely has the right shape is rejected here.

Trade-offs: identifiers without a check digit (Argentine DNI, Colombian cédula, Peruvian
DNI without its check character) can only be checked for shape; the detector accepts them
only next to a keyword. Phone numbers are checked against each country's numbering plan
(area codes, mobile prefixes, lengths), not against live allocation tables.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Callable, Iterable

_NON_ALNUM = re.compile(r"[^0-9A-Za-zÑñ&]")
_NON_DIGIT = re.compile(r"[^0-9]")
# RFC 5322 dot-atoms, with the Unicode letters of RFC 6531 (joão@empresa.com.br); no quoted
# local parts, comments or IP literals: they do not occur in chat text.
_EMAIL = re.compile(
    r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*"
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}"
)
_CURP = re.compile(
    r"[A-Z][AEIOUX][A-Z]{2}[0-9]{6}[HMX]"
    r"(AS|BC|BS|CC|CH|CL|CM|CS|DF|DG|GR|GT|HG|JC|MC|MN|MS|NE|NL|NT|OC|PL|QR|QT|SL|SP|SR|TC"
    r"|TL|TS|VZ|YN|ZS)[B-DF-HJ-NP-TV-Z]{3}[0-9A-Z][0-9]"
)
_RFC = re.compile(r"[A-ZÑ&]{3,4}[0-9]{6}[1-9A-Z]{2}[0-9A]")

# ISO 13616 lengths (country code included) for the countries users deal with most; any
# other two-letter country is accepted with the generic 15-34 length and the mod-97 check.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "BR": 29, "CH": 21, "CR": 22, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "ES": 24, "FI": 18, "FR": 27,
    "GB": 22, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15,
    "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SV": 28,
}  # fmt: skip

# (first prefix, last prefix, allowed lengths), first match wins: Visa, Mastercard, Amex,
# Diners, JCB, Hipercard, Discover, UnionPay, then the Maestro ranges that also hold the
# Latin American schemes (Elo, Hipercard, Cabal, Naranja, Carnet), all 16 or 19 digits.
_CARD_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),
    ("51", "55", frozenset({16})),
    ("2221", "2720", frozenset({16})),
    ("34", "34", frozenset({15})),
    ("37", "37", frozenset({15})),
    ("300", "305", frozenset(range(14, 20))),
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(14, 20))),
    ("3528", "3589", frozenset(range(16, 20))),
    ("3841", "3841", frozenset({16, 19})),
    ("6011", "6011", frozenset(range(16, 20))),
    ("644", "659", frozenset(range(16, 20))),
    ("62", "62", frozenset(range(16, 20))),
    ("50", "50", frozenset({16, 19})),
    ("56", "69", frozenset({16, 19})),
)

# Brazilian area codes (DDD) in use.
_BR_DDD = frozenset(
    map(str, (11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37,
              38, 41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66,
              67, 68, 69, 71, 73, 74, 75, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92,
              93, 94, 95, 96, 97, 98, 99))
)  # fmt: skip
# Peruvian provincial area codes (Lima is 1); Chilean area codes outside Santiago (2).
PE_AREAS = frozenset(
    map(str, (41, 42, 43, 44, 51, 52, 53, 54, 56, 61, 62, 63, 64, 65, 66, 67, 72, 73, 74, 76,
              82, 83, 84))
)  # fmt: skip
CL_AREAS = frozenset(
    map(str, (32, 33, 34, 35, 41, 42, 43, 45, 51, 52, 53, 55, 57, 58, 61, 63, 64, 65, 67, 71,
              72, 73, 75))
)  # fmt: skip
# DIAN weights for the NIT check digit, from the rightmost body digit (bodies up to 15).
_NIT_WEIGHTS = (3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71)
_RFC_ALPHABET = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ Ñ"
_CURP_ALPHABET = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"


def digits_of(value: str) -> str:
    return _NON_DIGIT.sub("", value)


# Two spellings of one phone number match when the shorter still has this many digits:
# a national number with its area code (with or without the country code around it).
MIN_PHONE_MATCH = 10


def same_phone(digits: str, known: Iterable[str]) -> bool:
    """Whether ``digits`` is one of ``known`` with or without a country code (both sides
    keep at least the national number with its area code)."""
    if len(digits) < MIN_PHONE_MATCH:
        return False
    return any(
        len(k) >= MIN_PHONE_MATCH and (k.endswith(digits) or digits.endswith(k)) for k in known
    )


def compact(value: str) -> str:
    """Letters and digits only, upper-cased: the canonical form of an identifier."""
    return _NON_ALNUM.sub("", value).upper()


def _all_same(digits: str) -> bool:
    return digits == digits[0] * len(digits)


def _mod11(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def credit_card(value: str) -> bool:
    digits = digits_of(value)
    if not 13 <= len(digits) <= 19 or not luhn(digits):
        return False
    for first, last, lengths in _CARD_RANGES:
        prefix = digits[: len(first)]
        if int(first) <= int(prefix) <= int(last):
            return len(digits) in lengths
    return False


def iban(value: str) -> bool:
    code = compact(value)
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", code):
        return False
    expected = IBAN_LENGTHS.get(code[:2])
    if expected is not None and len(code) != expected:
        return False
    rearranged = code[4:] + code[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def cpf(value: str) -> bool:
    d = digits_of(value)
    if len(d) != 11 or _all_same(d):
        return False
    for n in (9, 10):
        r = _mod11(d[:n], tuple(range(n + 1, 1, -1)))
        if int(d[n]) != (0 if r < 2 else 11 - r):
            return False
    return True


def _cnpj_value(ch: str) -> int:
    # The 2026 alphanumeric CNPJ values each character as its ASCII code minus 48.
    return ord(ch) - 48


def cnpj(value: str) -> bool:
    code = compact(value)
    if not re.fullmatch(r"[0-9A-Z]{12}[0-9]{2}", code) or _all_same(code):
        return False
    weights = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
    for n in (12, 13):
        r = sum(_cnpj_value(c) * w for c, w in zip(code[:n], weights[-n:], strict=True)) % 11
        if int(code[n]) != (0 if r < 2 else 11 - r):
            return False
    return True


def _date_ok(yymmdd: str, century: int) -> bool:
    try:
        datetime.date(century + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6]))
    except ValueError:
        return False
    return True


def curp(value: str) -> bool:
    code = value.upper()
    if not _CURP.fullmatch(code):
        return False
    # RENAPO: the 17th character is a digit for births before 2000 and a letter after.
    if not _date_ok(code[4:10], 1900 if code[16].isdigit() else 2000):
        return False
    total = sum(_CURP_ALPHABET.index(c) * (18 - i) for i, c in enumerate(code[:17]))
    return int(code[17]) == (10 - total % 10) % 10


def rfc(value: str) -> bool:
    code = compact(value)
    if not _RFC.fullmatch(code) or not _date_ok(code[-9:-3], 2000):
        return False
    padded = code[:-1].rjust(12)  # company RFCs (12) are padded to the person length
    total = sum(_RFC_ALPHABET.index(c) * (13 - i) for i, c in enumerate(padded))
    return code[-1] == _RFC_ALPHABET[(11 - total) % 11]


def rut(value: str) -> bool:
    """RUT/RUN of 6 to 8 digits plus check character; bodies under 1,000,000 (six digits)
    are old companies and people, which the detector accepts only after "RUT"/"RUN"."""
    code = compact(value)
    body, dv = code[:-1], code[-1:]
    if not 6 <= len(body) <= 8 or not body.isdigit() or body[0] == "0":
        return False
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(body)))
    r = 11 - total % 11
    return dv == {11: "0", 10: "K"}.get(r, str(r))


def dni_ar(value: str) -> bool:
    d = digits_of(value)
    return len(d) == len(compact(value)) and 7 <= len(d) <= 8 and d[0] != "0"


def cuit(value: str) -> bool:
    d = digits_of(value)
    if len(d) != 11 or d[:2] not in {"20", "23", "24", "27", "30", "33", "34"}:
        return False
    r = 11 - _mod11(d[:10], (5, 4, 3, 2, 7, 6, 5, 4, 3, 2))
    # A result of 10 is never issued: AFIP changes the prefix to 23/33 instead.
    return r != 10 and int(d[10]) == r % 11


def rg(value: str) -> bool:
    """Brazil's RG: 5 to 10 digits, the last of which may be an "X" (São Paulo's check
    character); no check that holds for every issuing state."""
    code = compact(value)
    body, last = code[:-1], code[-1:]
    return body.isdigit() and (last.isdigit() or last == "X") and 6 <= len(code) <= 11


def cedula_co(value: str) -> bool:
    d = digits_of(value)
    return len(d) == len(compact(value)) and 6 <= len(d) <= 10 and d[0] != "0"


def nit(value: str) -> bool:
    """Colombian NIT: a body of 6 to 15 digits and the DIAN check digit. Companies have
    nine-digit bodies; a person's NIT is the cédula (6 to 10 digits) plus the check."""
    d = digits_of(value)
    body = d[:-1]
    if not 6 <= len(body) <= 15 or body[0] == "0" or _all_same(body):
        return False
    r = sum(int(c) * w for c, w in zip(reversed(body), _NIT_WEIGHTS, strict=False)) % 11
    return int(d[-1]) == (r if r < 2 else 11 - r)


def dni_pe(value: str) -> bool:
    code = compact(value)
    if len(code) not in (8, 9) or not code[:8].isdigit() or _all_same(code[:8]):
        return False
    if len(code) == 8:
        return True
    c = _mod11(code[:8], (3, 2, 7, 6, 5, 4, 3, 2))
    # RENIEC prints the check as a digit or a letter; both forms are accepted.
    return code[8] in ("65432110987"[c], "KJIHGFEDCBA"[c])


def dni(value: str) -> bool:
    """Eight bare digits that are both an Argentine and a Peruvian DNI."""
    return dni_ar(value) and dni_pe(value) and len(compact(value)) == 8


def ruc(value: str) -> bool:
    d = digits_of(value)
    if len(d) != 11 or d[:2] not in {"10", "15", "17", "20"}:
        return False
    return int(d[10]) == (11 - _mod11(d[:10], (5, 4, 3, 2, 7, 6, 5, 4, 3, 2))) % 10


def ip_address(value: str) -> bool:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    # Loopback and the unspecified address are configuration, never a person's.
    return not (ip.is_loopback or ip.is_unspecified)


def email(value: str) -> bool:
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        return False
    local, _, domain = value.rpartition("@")
    return len(local) <= 64 and ".." not in value and not domain.startswith("-")


# Phone numbers. Each national checker takes the digits after the country code.


def phone_br(n: str) -> bool:
    if n[:2] not in _BR_DDD:
        return False
    sub = n[2:]
    return (len(sub) == 9 and sub[0] == "9") or (len(sub) == 8 and sub[0] in "2345")


def phone_mx(n: str) -> bool:
    if len(n) == 11 and n[0] == "1":  # the old mobile "1" after +52, still written
        n = n[1:]
    return len(n) == 10 and n[0] in "23456789"


def phone_ar(n: str) -> bool:
    if len(n) == 11 and n[0] == "9":  # +54 9: the mobile marker of international format
        n = n[1:]
    if len(n) != 10:
        return False
    # Area codes are 11 (Buenos Aires) or 3-4 digits starting with 2 or 3; area plus
    # subscriber is 10 digits, and a subscriber number never starts with 0 or 1.
    if n[:2] == "11":
        return n[2] not in "01"
    return n[0] in "23" and (n[3] not in "01" or n[4] not in "01")


def phone_ar_mobile15(n: str) -> bool:
    """An Argentine mobile written the old way: area code, "15", then the subscriber."""
    if len(n) != 12:
        return False
    return any(
        n[area : area + 2] == "15" and phone_ar(n[:area] + n[area + 2 :]) for area in (2, 3, 4)
    )


def phone_ar_national(n: str) -> bool:
    """Argentine national dialling: trunk 0, and "15" after the area code for mobiles."""
    if n[:1] != "0":
        return False
    n = n[1:]
    return phone_ar_mobile15(n) if len(n) == 12 else phone_ar(n)


def phone_co(n: str) -> bool:
    return len(n) == 10 and (n[:1] == "3" and n[1] in "012345" or n[:2] == "60")


def phone_mx_national(n: str) -> bool:
    """A Mexican number as dialled at home: ten digits, no old mobile "1"."""
    return len(n) == 10 and phone_mx(n)


def phone_cl(n: str) -> bool:
    return len(n) == 9 and n[0] in "2345679"


def phone_cl_regional(n: str) -> bool:
    """A Chilean landline outside Santiago: two-digit area code and seven digits."""
    return len(n) == 9 and n[:2] in CL_AREAS and n[2] not in "01"


def phone_pe(n: str) -> bool:
    if len(n) == 9:
        return n[0] == "9"
    # Landlines: Lima 1 + 7 digits, provinces a two-digit area code + 6 digits.
    return len(n) == 8 and (n[0] == "1" or n[:2] in PE_AREAS)


def _trunk(prefix: str, check: Callable[[str], bool]) -> Callable[[str], bool]:
    """A national plan dialled with a leading ``prefix`` (trunk 0, the NANP 1)."""
    return lambda n: n[: len(prefix)] == prefix and check(n[len(prefix) :])


def phone_es(n: str) -> bool:
    return len(n) == 9 and n[0] in "6789"


def phone_us(n: str) -> bool:
    return len(n) == 10 and n[0] not in "01" and n[3] not in "01"


PHONE_COUNTRIES = {
    "55": ("BR", phone_br),
    "52": ("MX", phone_mx),
    "54": ("AR", phone_ar),
    "57": ("CO", phone_co),
    "56": ("CL", phone_cl),
    "51": ("PE", phone_pe),
    "34": ("ES", phone_es),
    "1": ("US", phone_us),
}
# National dialling (no country code): the detector picks the plans a written shape fits.
# Stricter than international: an 8-digit group is more often a document than a landline.
NATIONAL_PLANS: dict[str, Callable[[str], bool]] = {
    "BR": phone_br,
    "MX": phone_mx_national,
    "AR": lambda n: len(n) == 10 and phone_ar(n),
    "AR0": phone_ar_national,
    "CO": phone_co,
    "US": phone_us,
    "ES": phone_es,
    "PE": lambda n: len(n) == 9 and phone_pe(n),
    "CL": lambda n: len(n) == 9 and n[0] in "29",
    # The same plans behind a prefix, or a second way of writing them; the key's first
    # two letters are the country reported.
    "AR15": phone_ar_mobile15,
    "BR0": _trunk("0", phone_br),
    "PE0": _trunk("0", lambda n: len(n) == 8 and phone_pe(n)),
    "CL2": phone_cl_regional,
    "US1": _trunk("1", phone_us),
    # Mexico's retired mobile (044, 045) and long-distance (01) prefixes.
    "MX044": _trunk("044", phone_mx_national),
    "MX045": _trunk("045", phone_mx_national),
    "MX01": _trunk("01", phone_mx_national),
}
# The Mexican plans dialled behind a retired prefix.
MX_PREFIXED = ("MX044", "MX045", "MX01")


def phone_international(value: str) -> str | None:
    """The country of a number written with its country code ("+" or "00"), "INTL" for a
    valid E.164 number of another country, or None."""
    digits = digits_of(value)
    if value.lstrip().startswith("00"):
        digits = digits[2:]
    if not 8 <= len(digits) <= 15 or digits[0] == "0":
        return None
    for cc in (digits[:1], digits[:2]):
        if cc in PHONE_COUNTRIES:
            country, check = PHONE_COUNTRIES[cc]
            return country if check(digits[len(cc) :]) else None
    return "INTL"


def phone_national(value: str, plans: tuple[str, ...] = tuple(NATIONAL_PLANS)) -> str | None:
    """The first of ``plans`` whose national numbering ``value`` fits, or None."""
    digits = digits_of(value)
    for plan in plans:
        if NATIONAL_PLANS[plan](digits):
            return plan[:2]
    return None


def phone(value: str) -> bool:
    if value.lstrip().startswith(("+", "00")):
        return phone_international(value) is not None
    # A country code written without its "+" ("56 9 8765 4321") names a known plan.
    return phone_national(value) is not None or phone_international("+" + value) not in (
        None,
        "INTL",
    )
