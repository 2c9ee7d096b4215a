"""The words before a number that say what it is.

A keyword counts for a number when it is the last keyword that ends at most ``WINDOW``
characters before it, in the same sentence, with no digit in between (otherwise it names
an earlier number). Groups: one per identifier ("cpf", "rut", "nit"...), identity
documents without check digit ("dni", "cédula", "C.C.", "documento"), phone words, and
negative words ("pedido", "factura", "versión", a currency sign) that mark a bare number
as an order number, an amount or a version rather than PII. Country hints ("Perú",
"Bogotá", "RENAPER") decide between the DNIs of Argentina and Peru when the number's shape
does not.

Trade-off: keywords are looked up word by word in a dictionary rather than by one big
regex alternation, which the regex engine would try word by word anyway; phrases count by
their last word. Look-ups are memoised per offset, and only candidates that need one
(identifiers without check digit, bare numbers, spans claimed by several kinds) ask.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

WINDOW = 24
_LOOKBACK = WINDOW + 40  # room for a whole phrase that ends inside the window
_LAST_DIGIT = re.compile(r".*[0-9]", re.DOTALL)
_HINT_RADIUS = 150

# Keywords by group, lower-case, compared with whole words (a trailing dot dropped, so
# "tel." is "tel" and "C.C." is "c.c"). Phrases count by their last word ("cédula de
# ciudadanía" by "ciudadanía", "documento nacional de identidad" by "identidad").
_WORDS: dict[str, str] = {
    "CPF": "cpf",
    "CNPJ": "cnpj",
    "RUT": "rut run",
    "CUIT": "cuit cuil",
    "RUC": "ruc",
    "NIT": "nit",
    # Brazil's identity card (Registro Geral): issued by each state, most without a check
    # digit that holds across states, so only its keyword vouches for it.
    "RG": "rg r.g",
    "RFC": "rfc",
    "CURP": "curp",
    "IBAN": "iban",
    "CARD": "tarjeta cartão cartao card visa mastercard amex crédito credito débito debito",
    "PHONE": (
        "teléfono telefono telefone tel telf tlf tfno fono cel celu celular móvil movil whatsapp"
        " wpp zap whats phone mobile cell fone contacto contato llámame llamame llamar ligue ligar"
        " call fax"
    ),
    "DNI": "dni d.n.i",
    "CC": "cédula cedula ciudadanía ciudadania c.c",
    "ID": "documento identidad identidade identificación identificacion",
    "NEG": (
        "pedido orden order factura fatura invoice ref referencia referência ticket protocolo"
        " boleto serial serie série tracking rastreio guía guia isbn issn sku código codigo"
        " code versión version versão versao cep zip postal nota lote batch expediente"
        " radicado folio transacción transaccion transação transacao transaction monto valor"
        " total precio preço preco price importe pesos reais soles usd eur"
        # Numbered parts of documents and software: "section 3.2.1.4" is no address.
        " sección seccion seção secao section item ítem capítulo capitulo chapter cláusula"
        " clausula clause apartado inciso párrafo parrafo paragraph firmware release build"
        " oid artículo articulo artigo article art numeral figura figure fig tabla tabela"
        " table anexo annex apéndice apendice apêndice appendix paso passo step requisito"
        " requirement norma"
        # Quantities: "cantidad 300 123 4567" is a count, not a Colombian mobile.
        " cantidad cantidades quantidade quantidades quantity qty unidades units"
    ),
}
_KEYWORDS: dict[str, str] = {w: g for g, words in _WORDS.items() for w in words.split()}
# Upper-case abbreviations that are ordinary words, or nothing, in lower case.
# Colombians write "cc" in lower case too ("mi cc 1020304050"); an e-mail's "cc" is
# followed by an address, never by a number, so it vouches for nothing there.
_CASED: dict[str, str] = {"CC": "CC", "C.C": "CC", "cc": "CC", "Cc": "CC", "ID": "ID", "Id": "ID"}
# Keywords whose final dot is an abbreviation's ("tel. Juan"), besides dotted ones ("C.C.");
# after an acronym ("DNI. Tengo...") a dot ends the sentence.
_ABBREVIATIONS = frozenset({"tel", "telf", "tlf", "tfno", "cel", "ref"})
_WORD = re.compile(r"[^\W\d_]+(?:\.[^\W\d_]+)*\.?")
_CURRENCY = re.compile(r"[$€£] ?$")
# A full stop (or ! ? ;) and a space before a letter: the keyword was in another sentence.
# "Tel. 612..." and "D.N.I.: 30..." are abbreviations: a digit or colon follows them.
_SENTENCE_END = re.compile(r"[.!?;]\s+[^\W\d_]")

# Which kinds a keyword of each group vouches for (raises when candidates share a span).
_VOUCHES: dict[str, frozenset[str]] = {
    "CPF": frozenset({"CPF"}),
    "CNPJ": frozenset({"CNPJ"}),
    "RUT": frozenset({"RUT"}),
    "CUIT": frozenset({"CUIT"}),
    "RUC": frozenset({"RUC"}),
    "NIT": frozenset({"NIT"}),
    "RFC": frozenset({"RFC"}),
    "CURP": frozenset({"CURP"}),
    "IBAN": frozenset({"IBAN"}),
    "CARD": frozenset({"CREDIT_CARD"}),
    "PHONE": frozenset({"PHONE"}),
    "DNI": frozenset({"DNI_AR", "DNI_PE"}),
    "CC": frozenset({"CEDULA_CO"}),
    "RG": frozenset({"RG"}),
    "ID": frozenset({"DNI_AR", "DNI_PE", "CEDULA_CO"}),
    "NEG": frozenset(),
}
# Groups whose keyword vouches for a number the checksum rules alone would not report: the
# identity documents without check digit, a person's NIT (a cédula plus its check digit)
# and a RUT under 1,000,000 (six digits).
_CONTEXT_GROUPS = frozenset({"DNI", "CC", "ID", "NIT", "RUT", "RG"})
_COUNTRY_HINTS = re.compile(
    r"(?i)(?<![^\W\d_])(?:"
    r"(?P<AR>argentin[ao]s?|argentina|buenos aires|renaper|anses|afip|cuil|cuit|rosario)"
    r"|(?P<PE>per[uú]|peruan[ao]s?|lima|reniec|sunat|ruc|arequipa|cusco)"
    r"|(?P<CO>colombia|colombian[ao]s?|bogot[aá]|medell[ií]n|barranquilla|registradur[ií]a"
    r"|dian))(?![^\W\d_])"
)


@dataclass(frozen=True, slots=True)
class KeywordHit:
    group: str
    end: int
    # "C.C.", "tel.", "D.N.I.": the final dot ends the abbreviation, not the sentence.
    abbreviation: bool = False

    @property
    def vouches(self) -> frozenset[str]:
        return _VOUCHES[self.group]

    @property
    def negative(self) -> bool:
        return self.group == "NEG"

    @property
    def context(self) -> bool:
        """Whether it vouches for an identifier without a check digit."""
        return self.group in _CONTEXT_GROUPS

    @property
    def names_identifier(self) -> bool:
        """Whether it names one specific kind of identifier (not "documento", not "pedido")."""
        return self.group not in ("ID", "NEG")

    @property
    def phone(self) -> bool:
        return self.group == "PHONE"


@lru_cache(maxsize=32)
def extra_pattern(extra: tuple[str, ...]) -> re.Pattern[str] | None:
    """The caller's own keywords (any phrase), matched as whole words, case-insensitively."""
    words = "|".join(re.escape(w.strip()) for w in sorted(extra, key=len, reverse=True))
    return re.compile(rf"(?<![^\W\d_])(?:{words})(?![^\W\d_])", re.IGNORECASE) if words else None


class Context:
    """Keyword and country-hint look-ups over one normalised text, memoised by offset."""

    def __init__(self, norm: str, extra_keywords: tuple[str, ...] = ()):
        self.norm = norm
        self._extra = extra_pattern(extra_keywords) if extra_keywords else None
        self._memo: dict[int, KeywordHit | None] = {}
        self._hints: list[tuple[int, str]] | None = None

    def keyword(self, start: int) -> KeywordHit | None:
        if start in self._memo:
            return self._memo[start]
        lo = max(0, start - _LOOKBACK)
        # Only what follows the last digit can name this number.
        digit = _LAST_DIGIT.match(self.norm, lo, start)
        hit = self._find(digit.end() if digit else lo, start)
        if hit is not None and (
            start - hit.end > WINDOW
            or _SENTENCE_END.search(self.norm, hit.end if hit.abbreviation else hit.end - 1, start)
        ):
            hit = None  # too far, or in an earlier sentence ("...la factura. Mi IP es")
        if _CURRENCY.search(self.norm, max(0, start - 2), start):
            hit = KeywordHit("NEG", start)
        self._memo[start] = hit
        return hit

    def names_earlier(self, start: int, kind: str) -> bool:
        """Whether a keyword of ``kind`` comes earlier in the sentence of the number at
        ``start`` (within ``_LOOKBACK``), whatever words follow it: "mi CPF (ref) ...",
        "my visa card, code ..."."""
        lo = max(0, start - _LOOKBACK)
        for m in _WORD.finditer(self.norm, lo, start):
            word = m.group().rstrip(".")
            group = _CASED.get(word) or _KEYWORDS.get(word.lower())
            if (
                group is not None
                and kind in _VOUCHES[group]
                and not _SENTENCE_END.search(self.norm, m.end(), start)
            ):
                return True
        return False

    def _find(self, lo: int, start: int) -> KeywordHit | None:
        hit = None
        for m in _WORD.finditer(self.norm, lo, start):
            word = m.group().rstrip(".")
            group = _CASED.get(word) or _KEYWORDS.get(word.lower())
            if group is not None:
                abbreviation = "." in word or word.lower() in _ABBREVIATIONS
                hit = KeywordHit(group, m.end(), abbreviation)
        if self._extra is not None:
            for m in self._extra.finditer(self.norm, lo, start):
                if hit is None or m.end() > hit.end:
                    hit = KeywordHit("ID", m.end())
        return hit

    def country_hint(self, start: int) -> str | None:
        """The country named closest to ``start`` (within ``_HINT_RADIUS``), if any."""
        if self._hints is None:
            # One pass over the whole text, the first time a DNI needs it.
            found = [(m.start(), m.lastgroup) for m in _COUNTRY_HINTS.finditer(self.norm)]
            self._hints = [(pos, group) for pos, group in found if group is not None]
        i = bisect_left(self._hints, (start, ""))
        near = [h for h in self._hints[max(0, i - 1) : i + 1] if abs(h[0] - start) <= _HINT_RADIUS]
        return min(near, key=lambda h: abs(h[0] - start))[1] if near else None


def identity_kind(
    hit: KeywordHit,
    number: str,
    check: str | None,
    hint: Callable[[], str | None],
    dni_country: str | None = None,
) -> str | None:
    """Which identifier a keyword-vouched number is (before its validator has a say).

    ``number`` is the digits as written (dots allowed), ``check`` a check character after a
    hyphen, ``hint`` asks for the country named nearby (only a DNI needs it) and
    ``dni_country`` ("AR" or "PE") is the deployment's answer when the text gives none.
    """
    if hit.group == "NIT":
        # Without its check digit a dotted number is the bare body, not a NIT to validate.
        return "NIT" if check is not None or "." not in number else None
    if hit.group == "RUT":
        # "RUT 123456785": after its keyword a RUT may be written without the hyphen, the
        # last digit being the check digit (the validator sees the same digits either way).
        return "RUT" if check is not None or "." not in number else None
    if hit.group == "RG":
        return "RG"
    if check is not None:
        return "DNI_PE" if hit.group in ("DNI", "ID") else None
    if hit.group == "CC":
        return "CEDULA_CO"
    return _dni_kind(hit.group, number, hint(), dni_country)


def _dni_kind(group: str, number: str, hint: str | None, dni_country: str | None) -> str:
    """Which country's identity number a "DNI" or "documento" keyword introduces.

    A country named nearby decides; otherwise the shape does: Argentines write their DNI
    with dots (7-8 digits) and never with a leading zero, and 6, 9 or 10 digits after a
    generic "documento" can only be a Colombian cédula. Eight bare digits fit an Argentine
    and a Peruvian DNI alike: the configured ``dni_country`` decides, and without one the
    number is reported as a ``DNI`` of either country rather than guessed.
    """
    digits = number.replace(".", "")
    if hint is not None and (group == "ID" or hint != "CO"):
        return {"AR": "DNI_AR", "PE": "DNI_PE", "CO": "CEDULA_CO"}[hint]
    if group == "ID" and len(digits) in (6, 9, 10):
        return "CEDULA_CO"
    if "." in number or len(digits) == 7:
        return "DNI_AR"
    if digits.startswith("0"):
        return "DNI_PE"  # Argentine numbers never start with a zero
    if dni_country is not None:
        return {"AR": "DNI_AR", "PE": "DNI_PE"}[dni_country]
    return "DNI"
