"""Synthetic PII for tests and benchmarks: valid values and look-alikes, from a seed.

``valid(kind, rng)`` returns a value whose check digits are computed here, written in one
of the forms people use ("123.456.789-09" or "12345678909"); ``lookalike(kind, rng)``
returns the same shape with a wrong check digit, a wrong area code, an impossible octet...
For identifiers without a check digit (DNI_AR, CEDULA_CO) the look-alike is simply another
number of the same shape: what makes it not PII is the missing keyword, which the caller's
text decides. Nothing here is a real person's data, except by coincidence of the digits.

The generators compute check digits independently of ``validators`` where the algorithm
allows (the CURP and RFC ones share only the alphabet), so the tests check one against
the other.
"""

from __future__ import annotations

import ipaddress
import random
import string
from collections.abc import Callable

UPPER = string.ascii_uppercase
CONSONANTS = "BCDFGHJKLMNPQRSTVWXYZ"
CURP_STATES = ("AS", "BC", "BS", "CC", "CH", "CL", "CM", "CS", "DF", "DG", "GR", "GT", "HG",
               "JC", "MC", "MN", "MS", "NL", "NT", "OC", "PL", "QR", "QT", "SL", "SP", "SR",
               "TC", "TL", "TS", "VZ", "YN", "ZS")  # fmt: skip
PHONE_COUNTRIES = ("BR", "MX", "AR", "CO", "CL", "PE", "ES", "US")
_NAMES = ["maria", "joao", "ana", "carlos", "lucia", "pedro", "sofia", "diego", "camila", "luis"]
_SURNAMES = ["silva", "garcia", "rodriguez", "souza", "lopez", "gomez", "perez", "santos"]
_DOMAINS = ["empresa.com.br", "correo.mx", "example.co", "acme.com", "uol.com.br", "mail.cl"]


def _digits(rng: random.Random, n: int, first: str = "0123456789") -> str:
    out = rng.choice(first) + "".join(rng.choice(string.digits) for _ in range(n - 1))
    return out if len(set(out)) > 1 else _digits(rng, n, first)


def _mod11_dv(body: str, weights: list[int]) -> int:
    r = sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11
    return 0 if r < 2 else 11 - r


def _other_digit(rng: random.Random, digit: str, alphabet: str = string.digits) -> str:
    return rng.choice([c for c in alphabet if c != digit])


def cpf(rng: random.Random) -> str:
    d = _digits(rng, 9)
    d += str(_mod11_dv(d, list(range(10, 1, -1))))
    d += str(_mod11_dv(d, list(range(11, 1, -1))))
    return rng.choice(
        [f"{d[:3]}.{d[3:6]}.{d[6:9]}-{d[9:]}", d, f"{d[:3]}.{d[3:6]}.{d[6:9]}-{d[9:]}"]
    )


def cnpj(rng: random.Random) -> str:
    d = _digits(rng, 8) + rng.choice(["0001", "0002", _digits(rng, 4, "0")])
    d += str(_mod11_dv(d, [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]))
    d += str(_mod11_dv(d, [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]))
    return rng.choice([f"{d[:2]}.{d[2:5]}.{d[5:8]}/{d[8:12]}-{d[12:]}", d])


def _date(rng: random.Random, century: int) -> str:
    year = rng.randrange(100) if century == 1900 else rng.randrange(0, 8)
    return f"{year:02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def curp(rng: random.Random) -> str:
    century = rng.choice([1900, 1900, 2000])
    head = rng.choice(UPPER) + rng.choice("AEIOU") + rng.choice(UPPER) + rng.choice(UPPER)
    body = head + _date(rng, century) + rng.choice("HM") + rng.choice(CURP_STATES)
    body += "".join(rng.choice(CONSONANTS) for _ in range(3))
    body += rng.choice(string.digits) if century == 1900 else rng.choice(UPPER)
    alphabet = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"
    total = sum(alphabet.index(c) * (18 - i) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def rfc(rng: random.Random) -> str:
    letters = 4 if rng.random() < 0.6 else 3
    head = "".join(rng.choice(UPPER) for _ in range(letters))
    homoclave = "".join(rng.choice("123456789ABCDEFGHIJKLMNPQRSTUVWXYZ") for _ in range(2))
    body = head + _date(rng, 1900) + homoclave
    alphabet = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ Ñ"
    total = sum(alphabet.index(c) * (13 - i) for i, c in enumerate(body.rjust(12)))
    code = body + alphabet[(11 - total % 11) % 11]
    return rng.choice([code, code, f"{code[:-9]}-{code[-9:-3]}-{code[-3:]}"])


def _rut_dv(body: str) -> str:
    total = sum(int(d) * (2 + i % 6) for i, d in enumerate(reversed(body)))
    return {11: "0", 10: "K"}.get(11 - total % 11, str(11 - total % 11))


def rut(rng: random.Random) -> str:
    body = str(
        rng.choice(
            [
                rng.randint(1_000_000, 26_000_000),
                rng.randint(76_000_000, 77_999_999),
                rng.randint(100_000, 999_999),  # old RUTs, written only after "RUT"/"RUN"
            ]
        )
    )
    dv = _rut_dv(body)
    dotted = f"{int(body):,}".replace(",", ".")
    return rng.choice([f"{dotted}-{dv}", f"{body}-{dv}"])


def dni_ar(rng: random.Random) -> str:
    n = rng.randint(3_000_000, 48_000_000)
    return rng.choice([f"{n:,}".replace(",", "."), str(n)])


def cuit(rng: random.Random) -> str:
    while True:
        body = rng.choice(["20", "23", "24", "27", "30", "33", "34"]) + _digits(rng, 8)
        r = (
            11
            - sum(int(d) * w for d, w in zip(body, [5, 4, 3, 2, 7, 6, 5, 4, 3, 2], strict=True))
            % 11
        )
        if r != 10:
            d = body + str(r % 11)
            return rng.choice([f"{d[:2]}-{d[2:10]}-{d[10]}", f"{d[:2]}-{d[2:10]}-{d[10]}", d])


def cedula_co(rng: random.Random) -> str:
    n = rng.choice([rng.randint(1_000_000, 99_999_999), rng.randint(1_000_000_000, 1_130_000_000)])
    return rng.choice([f"{n:,}".replace(",", "."), str(n)])


def nit(rng: random.Random) -> str:
    """A company's NIT (nine digits from 8 or 9) or a person's (a cédula of 6 to 10 digits)."""
    if rng.random() < 0.6:
        body = _digits(rng, 9, "89")
    else:
        body = _digits(rng, rng.choice([6, 7, 8, 8, 10, 10]), "123456789")
    weights = [3, 7, 13, 17, 19, 23, 29, 37, 41, 43]
    r = sum(int(c) * w for c, w in zip(reversed(body), weights, strict=False)) % 11
    dv = r if r < 2 else 11 - r
    return rng.choice([f"{int(body):,}".replace(",", ".") + f"-{dv}", f"{body}-{dv}"])


def rg(rng: random.Random) -> str:
    """São Paulo's shape, 12.345.678-9 (the check may be X), or the digits bare."""
    body = rng.randint(1_000_000, 59_999_999)
    check = rng.choice("0123456789X")
    bare = f"{body}{check}" if check != "X" else f"{body}-X"  # an X is always hyphenated
    return rng.choice([f"{body:,}".replace(",", ".") + f"-{check}", bare])


def needs_keyword(kind: str, value: str) -> bool:
    """Whether ``value`` counts only after its keyword: a NIT whose body is not a company's
    nine digits (a person's cédula plus check digit), a RUT under 1,000,000."""
    body = "".join(c for c in value[:-1] if c.isdigit())
    return (kind == "NIT" and len(body) != 9) or (kind == "RUT" and len(body) < 7)


def dni_pe(rng: random.Random) -> str:
    body = _digits(rng, 8)
    c = sum(int(d) * w for d, w in zip(body, [3, 2, 7, 6, 5, 4, 3, 2], strict=True)) % 11
    return rng.choice([body, body, f"{body}-{'65432110987'[c]}", f"{body}-{'KJIHGFEDCBA'[c]}"])


def ruc(rng: random.Random) -> str:
    body = rng.choice(["10", "20", "20", "15", "17"]) + _digits(rng, 8)
    w = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]
    return body + str((11 - sum(int(d) * x for d, x in zip(body, w, strict=True)) % 11) % 10)


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str((10 - total % 10) % 10)


def credit_card(rng: random.Random) -> str:
    prefix, length = rng.choice(
        [
            ("4", 16),
            ("4", 16),
            ("51", 16),
            ("55", 16),
            ("2221", 16),
            ("37", 15),
            ("34", 15),
            ("6011", 16),
            ("636368", 16),
            ("606282", 16),
            ("3528", 16),
            ("62", 16),
        ]
    )
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    n = body + _luhn_digit(body)
    if length == 15:
        return rng.choice([f"{n[:4]} {n[4:10]} {n[10:]}", n])
    sep = rng.choice([" ", "-", ""])
    return sep.join(n[i : i + 4] for i in range(0, 16, 4))


# BBAN layouts: "n" digits, "a" upper-case letters, "c" either.
_IBAN_BBAN = {
    "ES": "n" * 20,
    "PT": "n" * 21,
    "DE": "n" * 18,
    "FR": "n" * 10 + "c" * 11 + "nn",
    "IT": "a" + "n" * 10 + "c" * 12,
    "GB": "aaaa" + "n" * 14,
    "NL": "aaaa" + "n" * 10,
    "BR": "n" * 23 + "a" + "c",
    "BE": "n" * 12,
    "CR": "n" * 18,
}


def iban(rng: random.Random) -> str:
    country = rng.choice(list(_IBAN_BBAN))
    pools = {"n": string.digits, "a": UPPER, "c": UPPER + string.digits}
    bban = "".join(rng.choice(pools[k]) for k in _IBAN_BBAN[country])
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    code = f"{country}{98 - number % 97:02d}{bban}"
    return rng.choice([" ".join(code[i : i + 4] for i in range(0, len(code), 4)), code])


def ip_address(rng: random.Random) -> str:
    if rng.random() < 0.7:
        while True:
            ip4 = ipaddress.IPv4Address(rng.getrandbits(32))
            if ip4.is_global:
                return str(ip4)
    return str(ipaddress.IPv6Address((0x2001_0DB8 << 96) | rng.getrandbits(64)))


def email(rng: random.Random) -> str:
    local = rng.choice(_NAMES) + rng.choice([".", "_", ""]) + rng.choice(_SURNAMES)
    if rng.random() < 0.3:
        local += str(rng.randint(1, 99))
    return f"{local}@{rng.choice(_DOMAINS)}"


def _national_phone(rng: random.Random, country: str, prefixed: bool = False) -> str:
    """A national number; with ``prefixed``, possibly in a form that only national dialling
    has (trunk 0, the NANP 1, the Argentine "15"), which has no international twin."""
    d = _digits
    only_national = {
        "BR": [
            f"(0{rng.choice(['11', '21', '31', '85'])}) 9{d(rng, 4)}-{d(rng, 4)}",
            f"0{rng.choice(['11', '21', '47'])} {d(rng, 4, '2345')}-{d(rng, 4)}",
        ],
        "AR": [f"11 15 {d(rng, 4, '2345')}-{d(rng, 4)}", f"0341 15 {d(rng, 3, '456')}-{d(rng, 4)}"],
        # Mexico's retired mobile and long-distance prefixes, still written by many.
        "MX": [
            f"044 55 {d(rng, 4)} {d(rng, 4)}",
            f"01 {d(rng, 3, '2456789')} {d(rng, 3)} {d(rng, 4)}",
        ],
        # A Chilean mobile in two groups, and with the country code but no "+".
        "CL": [f"9{d(rng, 4)} {d(rng, 4)}", f"56 9 {d(rng, 4)} {d(rng, 4)}"],
        "PE": [
            f"(01) {d(rng, 3, '234567')}-{d(rng, 4)}",
            f"01 {d(rng, 3, '234567')} {d(rng, 4)}",
            f"0{rng.choice(['44', '54', '64', '74', '84'])} {d(rng, 6, '2345')}",
        ],
        "US": [
            f"1-{rng.choice(['800', '888'])}-{d(rng, 3, '23456789')}-{d(rng, 4)}",
            f"1 ({d(rng, 3, '23456789')}) {d(rng, 3, '23456789')}-{d(rng, 4)}",
        ],
    }
    if prefixed and country in only_national and rng.random() < 0.5:
        return rng.choice(only_national[country])
    forms = {
        "BR": [
            f"({rng.choice(['11', '21', '31', '41', '61', '71', '85'])}) 9{d(rng, 4)}-{d(rng, 4)}",
            f"({rng.choice(['11', '19', '47'])}) {d(rng, 4, '2345')}-{d(rng, 4)}",
        ],
        "MX": [
            f"55 {d(rng, 4)} {d(rng, 4)}",
            f"(33) {d(rng, 4)}-{d(rng, 4)}",
            f"{d(rng, 3, '2456789')} {d(rng, 3)} {d(rng, 4)}",
        ],
        "AR": [f"11 {d(rng, 4, '2345')}-{d(rng, 4)}"],
        "CO": [f"3{d(rng, 2, '0125')} {d(rng, 3)} {d(rng, 4)}", f"601 {d(rng, 3)} {d(rng, 4)}"],
        "CL": [
            f"9 {d(rng, 4)} {d(rng, 4)}",
            f"(2) 2{d(rng, 3)} {d(rng, 4)}",
            f"({rng.choice(['32', '41', '45', '55', '71'])}) {d(rng, 3, '2345678')} {d(rng, 4)}",
        ],
        "PE": [f"9{d(rng, 2)} {d(rng, 3)} {d(rng, 3)}"],
        "ES": [
            f"6{d(rng, 2)} {d(rng, 3)} {d(rng, 3)}",
            f"6{d(rng, 2)} {d(rng, 2)} {d(rng, 2)} {d(rng, 2)}",
            f"91 {d(rng, 3)} {d(rng, 2)} {d(rng, 2)}",
        ],
        "US": [f"({d(rng, 3, '23456789')}) {d(rng, 3, '23456789')}-{d(rng, 4)}"],
    }
    return rng.choice(forms[country])


_COUNTRY_CODES = {"BR": "55", "MX": "52", "AR": "54", "CO": "57", "CL": "56", "PE": "51",
                  "ES": "34", "US": "1"}  # fmt: skip


def phone(rng: random.Random, country: str | None = None, international: bool | None = None) -> str:
    """A valid number of ``country`` (random by default), with its country code or not."""
    country = country or rng.choice(PHONE_COUNTRIES)
    intl = rng.random() < 0.5 if international is None else international
    national = _national_phone(rng, country, prefixed=not intl)
    if not intl:
        return national
    if country == "AR":
        national = "9 " + national
    return f"+{_COUNTRY_CODES[country]} {national.replace('(', '').replace(')', '')}"


def phone_lookalike(rng: random.Random, country: str | None = None) -> str:
    """A number written like ``country``'s phones whose area code or length is wrong."""
    country = country or rng.choice(PHONE_COUNTRIES)
    d = _digits
    return {
        "BR": rng.choice(
            [
                f"+55 (20) 9{d(rng, 4)}-{d(rng, 4)}",
                f"(11) 1{d(rng, 3)}-{d(rng, 4)}",
                f"(020) 9{d(rng, 4)}-{d(rng, 4)}",
            ]
        ),
        "MX": rng.choice([f"+52 05 {d(rng, 4)} {d(rng, 4)}", f"+52 55 {d(rng, 4)} {d(rng, 3)}"]),
        "AR": rng.choice(
            [
                f"+54 9 51 {d(rng, 4)}-{d(rng, 4)}",
                f"+54 11 {d(rng, 3)}-{d(rng, 4)}",
                f"11 15 0{d(rng, 3)}-{d(rng, 4)}",
            ]
        ),
        "CO": rng.choice(
            [f"+57 2{d(rng, 2)} {d(rng, 3)} {d(rng, 4)}", f"+57 300 {d(rng, 3)} {d(rng, 3)}"]
        ),
        "CL": rng.choice(
            [
                f"+56 1 {d(rng, 4)} {d(rng, 4)}",
                f"+56 9 {d(rng, 4)} {d(rng, 3)}",
                f"({rng.choice(['30', '38', '50'])}) {d(rng, 3, '2345678')} {d(rng, 4)}",
            ]
        ),
        "PE": rng.choice(
            [
                f"+51 8{d(rng, 2)} {d(rng, 3)} {d(rng, 3)}",
                f"+51 9{d(rng, 2)} {d(rng, 3)} {d(rng, 2)}",
                f"(01) {d(rng, 3, '234567')}-{d(rng, 3)}",
                f"0{rng.choice(['45', '69', '79'])} {d(rng, 6, '2345')}",
            ]
        ),
        "ES": rng.choice(
            [
                f"+34 5{d(rng, 2)} {d(rng, 3)} {d(rng, 3)}",
                f"+34 6{d(rng, 2)} {d(rng, 3)} {d(rng, 2)}",
            ]
        ),
        "US": rng.choice(
            [
                f"+1 ({d(rng, 3, '01')}) {d(rng, 3, '23456789')}-{d(rng, 4)}",
                f"+1 {d(rng, 3, '23456789')} {d(rng, 3, '01')} {d(rng, 4)}",
                f"1-{rng.choice(['800', '212', '415'])}-{d(rng, 3, '01')}-{d(rng, 4)}",
            ]
        ),
    }[country]


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "EMAIL": email,
    "PHONE": phone,
    "CREDIT_CARD": credit_card,
    "IBAN": iban,
    "IP_ADDRESS": ip_address,
    "CPF": cpf,
    "CNPJ": cnpj,
    "CURP": curp,
    "RFC": rfc,
    "RUT": rut,
    "DNI_AR": dni_ar,
    "CUIT": cuit,
    "CEDULA_CO": cedula_co,
    "NIT": nit,
    "DNI_PE": dni_pe,
    "RUC": ruc,
    "RG": rg,
}
# Kinds whose look-alike is a wrong check character at the end of the value.
_LAST_CHAR = {
    "CPF": string.digits,
    "CNPJ": string.digits,
    "CURP": string.digits,
    "RFC": "0123456789A",
    "RUT": "0123456789K",
    "CUIT": string.digits,
    "NIT": string.digits,
    "RUC": string.digits,
    "CREDIT_CARD": string.digits,
}


def valid(kind: str, rng: random.Random) -> str:
    return GENERATORS[kind](rng)


def lookalike(kind: str, rng: random.Random) -> str:
    """A value shaped like ``kind`` that is not one (see the module docstring)."""
    value = valid(kind, rng)
    if kind in _LAST_CHAR:
        return value[:-1] + _other_digit(rng, value[-1], _LAST_CHAR[kind])
    if kind == "IBAN":
        check = value[2:4]
        wrong = f"{(int(check) + rng.randint(1, 90)) % 97 + 2:02d}"
        return (
            value[:2]
            + (wrong if wrong != check else f"{(int(check) + 1) % 97 + 2:02d}")
            + value[4:]
        )
    if kind == "DNI_PE":
        body = value[:8]
        c = sum(int(d) * w for d, w in zip(body, [3, 2, 7, 6, 5, 4, 3, 2], strict=True)) % 11
        good = {"65432110987"[c], "KJIHGFEDCBA"[c]}
        return f"{body}-{rng.choice([x for x in string.digits if x not in good])}"
    if kind == "PHONE":
        return phone_lookalike(rng)
    if kind == "EMAIL":
        local, _, domain = value.partition("@")
        return rng.choice(
            [
                f"{local}@{domain.split('.')[0]}",
                f"{local}@@{domain}",
                f"{local}.{domain}",
                f"{local}@{domain.replace('.', '..', 1)}",
                f"{local} @ {domain.split('.')[0]}",
            ]
        )
    if kind == "IP_ADDRESS":
        a, b, c = (rng.randint(1, 254) for _ in range(3))
        return rng.choice(
            [
                f"{a}.{b}.{c}.{rng.randint(256, 999)}",
                f"{a}.{b}.{c}",
                f"{a}.{b}.{c}.{a}.{b}",
                f"{a}.{b:02d}.0{c % 10}.{a}",
            ]
        )
    return value  # DNI_AR, CEDULA_CO, RG: no check digit; the missing keyword decides
