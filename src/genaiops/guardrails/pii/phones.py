"""Phone numbers in text: which runs of digit groups are written like a phone number.

With a country code ("+55 11 98765-4321", "0034 612 345 678") the digits must fit that
country's numbering plan (``validators.phone_international``). Without one, a number counts
only in the groupings people use for phones in each country, and only for the plans that
grouping implies: "(11) 98765-4321" is Brazilian, "612 34 56 78" Spanish, "300 123 4567"
American, Colombian or Mexican, "(01) 234-5678" Lima with its trunk 0, "1-800-555-0199"
American with the NANP 1, "11 15 2345-6789" an Argentine mobile with the old "15". Where
the grouping pins the area code ("11" is Argentina's only two-digit area) it must fit too;
where several countries still fit, a two-digit area in parentheses is read as a Brazilian
DDD and otherwise the order of ``_SHAPES`` decides the reported country. Grouping keeps
out dates, timestamps, ISBNs, CPFs and amounts ("2024-01-15 10", "978-3-16-148410-0",
"987.654.321") that have the right digit count. A bare run of digits ("3001234567") counts
only after a phone word ("tel", "fono", "celular"...), and no national number counts after
a negative word ("pedido", "factura"...).

The regex takes a whole chain of groups; the chain is then split into windows at spaces
only, never inside a token joined by "-" or ".", so "CEP 01310-100 (11) 3456-7890" yields
the phone and "20-12345678-6" (a CUIT) yields none.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from typing import NamedTuple

from genaiops.guardrails.pii import validators as v
from genaiops.guardrails.pii.context import Context, KeywordHit

# Digit-first (see detectors._D); a "+" or "(" before the first digit is added back after.
_PHONE = re.compile(
    r"[0-9](?<![0-9A-Za-z].)[0-9]*+\)?"
    r"(?:(?:[ .-]{1,2}|(?<=\))|(?=\())\(?[0-9]++\)?)*+(?![0-9A-Za-z])"
)
_GROUP = re.compile(r"[0-9]+")
_MAX_GROUPS = 6

# Digits per group (no country code) -> the national plans that write numbers that way.
_SHAPES: dict[tuple[int, ...], tuple[str, ...]] = {
    (3, 3, 4): ("CO", "US", "MX"),
    (3, 7): ("CO", "US", "MX"),
    (2, 4, 4): ("MX", "AR", "BR"),
    (2, 8): ("MX", "AR", "BR"),
    (2, 2, 2, 2, 2): ("MX",),
    (2, 5, 4): ("BR",),
    (2, 1, 4, 4): ("BR",),
    (2, 9): ("BR",),
    (3, 4, 4): ("AR0", "BR0"),
    (4, 3, 4): ("AR0",),
    (4, 7): ("AR0",),
    (3, 2, 4, 4): ("AR0",),
    (4, 2, 3, 4): ("AR0",),
    (3, 3, 3): ("ES", "PE", "PE0"),
    (3, 2, 2, 2): ("ES",),
    (2, 3, 2, 2): ("ES",),
    (1, 4, 4): ("CL",),
    (1, 8): ("CL",),
    (5, 4): ("CL",),  # a Chilean mobile written "98765 4321"
    # Trunk and NANP prefixes, regional landlines and the Argentine "15" mobile.
    (2, 3, 4): ("PE0", "CL2"),
    (2, 7): ("PE0", "CL2"),
    (3, 6): ("PE0",),
    (3, 5, 4): ("BR0",),
    (1, 3, 3, 4): ("US1",),
    (2, 2, 4, 4): ("AR15",),
    (3, 2, 3, 4): ("AR15",),
}
# What the first group (the area code as written) must be when its length says more than
# the digits alone: Argentina's only two-digit area is 11 (011 with the trunk 0), Mexico's
# are 55, 33 and 81, and Lima, Peru's only one-digit area, is written 01.
_FIRST_GROUP: dict[tuple[str, int], frozenset[str]] = {
    ("AR", 2): frozenset({"11"}),
    ("AR15", 2): frozenset({"11"}),
    ("AR0", 3): frozenset({"011"}),
    ("MX", 2): frozenset({"55", "33", "81"}),
    ("PE0", 2): frozenset({"01"}),
    ("PE0", 3): frozenset("0" + area for area in v.PE_AREAS),
}
# Shapes whose second group is the "15" of an Argentine mobile.
_FIFTEEN = frozenset({(3, 2, 4, 4), (4, 2, 3, 4), (2, 2, 4, 4), (3, 2, 3, 4)})
_OPENINGS = frozenset(shape[:2] for shape in _SHAPES)
# A bare run of digits after a phone word, by length.
_BARE: dict[int, tuple[str, ...]] = {
    9: ("ES", "PE", "CL", "CL2", "PE0"),
    10: ("CO", "US", "MX", "AR"),
    11: ("BR", "AR0", "US1", "BR0"),
    12: ("BR0", "AR15"),
    13: ("AR0",),
}


class PhoneMatch(NamedTuple):
    start: int
    end: int
    country: str
    validator: str
    vouched: bool  # a phone word precedes it


class _Chain(NamedTuple):
    """One regex match: its digit groups, their lengths, and which follow a space."""

    groups: list[tuple[int, int]]
    lengths: list[int]
    spaced: list[bool]


def find_phones(norm: str, ctx: Context) -> Iterator[PhoneMatch]:
    for m in _PHONE.finditer(norm):
        if m.end() - m.start() < 8:
            continue
        base = m.start()
        groups = [(base + g.start(), base + g.end()) for g in _GROUP.finditer(m.group())]
        if norm[base - 1 : base] == "(":
            base -= 1
        if norm[max(0, base - 2) : base] == "+ ":
            base -= 2
        elif norm[base - 1 : base] == "+":
            base -= 1
        if base and norm[base - 1].isalnum():
            continue
        chain = _Chain(
            groups,
            [b - a for a, b in groups],
            [False] + [" " in norm[groups[k - 1][1] : groups[k][0]] for k in range(1, len(groups))],
        )
        if norm[base] == "+" or _dialled_abroad(norm, groups):
            found = _first(norm, ctx, chain, 0, base)
            if found is None:
                continue  # the rest of a "+..." chain is that (invalid) number, not another
            yield found
            start = _next_group(chain, found.end)
        else:
            start = 0
        yield from _national(norm, ctx, chain, start)


def _next_group(chain: _Chain, end: int) -> int:
    return bisect_left(chain.groups, (end, 0))


def _first(norm: str, ctx: Context, chain: _Chain, i: int, intl_start: int) -> PhoneMatch | None:
    """The longest phone made of groups ``i, i+1...`` (ending at a space or the chain end)."""
    n = len(chain.groups)
    for j in range(min(n, i + _MAX_GROUPS), i, -1):
        if j == n or chain.spaced[j]:
            found = _window(norm, ctx, chain, i, j, intl_start)
            if found is not None:
                return found
    return None


def _national(norm: str, ctx: Context, chain: _Chain, i: int) -> Iterator[PhoneMatch]:
    # Windows start and end only at spaces: a group joined by "-" or "." belongs to its
    # neighbour ("20-12345678-6" holds no phone). A window must open like a known shape,
    # which keeps long runs of short groups ("1 2 3 4 ...") linear.
    n, lengths = len(chain.groups), chain.lengths
    while i < n:
        found = None
        if (i == 0 or chain.spaced[i]) and (
            lengths[i] in _BARE or (i + 1 < n and (lengths[i], lengths[i + 1]) in _OPENINGS)
        ):
            found = _first(norm, ctx, chain, i, -1)
        if found is None:
            i += 1
        else:
            widened = _with_prefix(norm, ctx, chain, i, found)
            if widened is not None:
                yield widened
            i = _next_group(chain, found.end)


def _window(
    norm: str, ctx: Context, chain: _Chain, i: int, j: int, intl_start: int
) -> PhoneMatch | None:
    groups = chain.groups
    end = groups[j - 1][1]
    if intl_start >= 0:
        country = v.phone_international(norm[intl_start:end])
        if country is None:
            return None
        hit = ctx.keyword(intl_start)
        return PhoneMatch(intl_start, end, country, "phone_international", _phone_word(hit))
    start = groups[i][0]
    if start > 0 and norm[start - 1] == "(":
        start -= 1
    lengths = tuple(chain.lengths[i:j])
    hit = None
    if len(lengths) == 1:
        # A bare run of digits is a phone only after a phone word.
        plans = _BARE.get(lengths[0], ())
        if plans:
            hit = ctx.keyword(start)
            plans = plans if _phone_word(hit) else ()
    else:
        plans = _SHAPES.get(lengths, ())
        seps = "".join(norm[groups[k][1] : groups[k + 1][0]] for k in range(i, j - 1))
        if plans and "." in seps and (len(lengths) > 3 or all(n == 3 for n in lengths[1:])):
            return None  # 612.345.678 is an amount, 71.177.03.71 an (invalid) IP address
        if lengths == (5, 4) and (seps != " " or norm[:start].rstrip().endswith(")")):
            return None  # "(020) 92522-1621" is a Brazilian shape, not a Chilean mobile
        plans = _grouped_plans(norm, groups[i:j], lengths, plans, norm[start] == "(")
    country = v.phone_national(norm[start:end], plans) if plans else None
    if country is None and len(lengths) == 1 and 11 <= lengths[0] <= 15:
        # After a phone word, a bare run that is no national number may be an
        # international one written without its "+" ("whatsapp 5511987654321").
        hit = hit or ctx.keyword(start)
        international = v.phone_international("+" + norm[start:end])
        if international is not None and _phone_word(hit):
            return PhoneMatch(start, end, international, "phone_international", True)
    if country is None:
        return None
    hit = hit or ctx.keyword(start)
    if hit is not None and hit.negative:
        return None
    return PhoneMatch(start, end, country, "phone_national", _phone_word(hit))


def _with_prefix(
    norm: str, ctx: Context, chain: _Chain, i: int, found: PhoneMatch
) -> PhoneMatch | None:
    """``found`` (a national number opening at group ``i``) widened to a separate group
    before it that is a calling code written without the "+" under whose plan the number
    is valid ("56 9 8765 4321", "whatsapp 55 11 98765-4321"), or a Mexican dialling prefix
    before a Mexican number ("044 55 1234 5678"); the country is the prefix's,
    so the masked span leaves no part of the number behind. None when a negative word
    stands before the prefix ("ref 56 9 8765 4321")."""
    if i == 0 or not chain.spaced[i] or (i > 1 and not chain.spaced[i - 1]):
        return found
    a, b = chain.groups[i - 1]
    if a and norm[a - 1] not in " (:":
        return found  # "2024-56 ..." or a "+" chain: not a prefix written on its own
    prefix, digits = norm[a:b], v.digits_of(norm[found.start : found.end])
    # Mexico's retired 044/045 mobile or 01 long-distance prefix; else a calling code,
    # which reads the number under its own plan (the codes are no prefixes of each other).
    country = v.phone_national(prefix + digits, v.MX_PREFIXED)
    if country is None and prefix in v.PHONE_COUNTRIES:
        country = v.phone_international("+" + prefix + digits)
    if country is None:
        return found
    hit = ctx.keyword(a)
    if hit is not None and hit.negative:
        return None
    return found._replace(start=a, country=country)


def _grouped_plans(
    norm: str,
    groups: list[tuple[int, int]],
    lengths: tuple[int, ...],
    plans: tuple[str, ...],
    parenthesised: bool,
) -> tuple[str, ...]:
    """The plans whose way of writing numbers the groups follow, most likely first.

    Where several countries' plans fit one number, a two-digit area code in parentheses
    ("(11) 3456-7890") is the Brazilian way of writing a DDD, so Brazil comes first;
    otherwise the order of ``_SHAPES`` decides.
    """
    first = norm[groups[0][0] : groups[0][1]]
    if lengths in _FIFTEEN and norm[groups[1][0] : groups[1][1]] != "15":
        return ()
    kept = tuple(
        plan
        for plan in plans
        if (allowed := _FIRST_GROUP.get((plan, len(first)))) is None or first in allowed
    )
    if parenthesised and len(first) == 2 and "BR" in kept:
        kept = ("BR", *(plan for plan in kept if plan != "BR"))
    return kept


def _dialled_abroad(norm: str, groups: list[tuple[int, int]]) -> bool:
    """ "0034 612 345 678" or "00 55 11 ...": the international prefix 00, then a space."""
    a, b = groups[0]
    first = norm[a:b]
    return (
        len(groups) > 1
        and first.startswith("00")
        and len(first) <= 5
        and norm[b : groups[1][0]] == " "
        and first[2:3] != "0"
    )


def _phone_word(hit: KeywordHit | None) -> bool:
    return hit is not None and hit.phone
