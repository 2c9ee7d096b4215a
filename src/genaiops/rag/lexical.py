"""Lexical normalisation shared by indexing and querying: Unicode compatibility
decomposition, diacritics folded (``canción`` = ``cancion``, ``ação`` = ``acao``), lower
case, word tokens, and a light plural stripping that helps Spanish, Portuguese and English
alike without a language-specific stemmer; queries also look for the other number of
plurals that are more than an "s" (``number_forms``). FTS5 then ranks with BM25 over
these terms."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

_WORD = re.compile(r"\w+", re.UNICODE)

# Too common to carry meaning in a query: the function words of Spanish, Portuguese and
# English (articles, prepositions, conjunctions, pronouns, question words, auxiliaries and
# the commonest verbs). Dropped from queries only (not from the index): they would make
# any text "match" a question about anything. Folded and stemmed as queries are, below.
_FUNCTION_WORDS = """
a al ante bajo con contra de del desde durante en entre hacia hasta mediante para por
según sin sobre tras el la lo los las un una uno unos unas y e o u ni pero sino que si no
como cómo cuando cuándo donde dónde adónde cual cuál cuales cuáles quien quién quienes
quiénes cuanto cuánto cuanta cuánta cuantos cuántos cuantas cuántas porque pues más muy
ya también solo sólo aquí allí este esta esto estos estas ese esa eso esos esas aquel
aquella mi mis tu tus su sus nuestro nuestra nuestros nuestras yo me te se nos le les
ello ella ellos ellas usted ustedes es son era eran fue ser estar está están estoy hay
ha han he haber tiene tienen tengo tener puedo puede pueden poder debo debe deben hago
hace hacer quiero sea algún alguna algunos algunas todo toda todos todas otro otra otros
otras
ao aos à às até com da das do dos em na nas no nos num numa pela pelas pelo pelos os um
uma uns umas ou mas não sim qual quais quem quanto quanta quantos quantas quando onde
porque você vocês ele ela eles elas eu meu minha meus minhas seu sua seus suas nosso
nossa nossos nossas isso isto esse essa esses essas aquele aquela são foi estou estão
tem têm tenho ter posso pode podem devo deve devem fazer faz quero existe algum alguns
outro outra outros outras muito também só aqui já
about an and are as at be been but by can could did do does for from give get got had
has have he her his how i if in into is it its many may me much must my of on or our
should she so some tell than that the their them there these they this those to too us
was we were what when where which who whom why will with would you your any all
"""


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _stem(token: str) -> str:
    if len(token) > 4 and token.endswith("s") and not token.endswith("ss"):
        return token[:-1]
    return token


def terms(text: str) -> list[str]:
    return [_stem(t) for t in _WORD.findall(fold(text))]


# (ending, shortest term, what replaces the ending): the first ending that fits gives a
# term's other number. Plurals shorter than five letters keep their "s" (see _stem).
_NUMBER_RULES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("ao", 3, ("oe", "ae")), ("oe", 4, ("ao",)), ("ae", 4, ("ao",)),  # pt ação/ações, pão/pães
    ("ai", 4, ("al",)), ("ei", 4, ("el",)), ("oi", 4, ("ol",)),  # pt hospitais, papéis
    ("ie", 4, ("y",)), ("y", 3, ("ie",)),  # en policy/policies
    ("ce", 4, ("z",)), ("z", 3, ("ce",)),  # es luz/luces
    ("le", 4, ("l",)), ("re", 4, ("r",)), ("ne", 4, ("n",)), ("de", 4, ("d",)),
    ("je", 4, ("j",)), ("xe", 4, ("x",)),  # es ciudades, canciones; en boxes
    ("al", 3, ("ale", "ai")), ("el", 3, ("ele", "ei")), ("ol", 3, ("ole", "oi")),
    ("an", 3, ("ane", "am")), ("en", 3, ("ene", "em")), ("in", 3, ("ine", "im")),
    ("on", 3, ("one", "om")), ("un", 3, ("une", "um")),  # es canción; pt viagens
    ("l", 3, ("le",)), ("r", 3, ("re",)), ("n", 3, ("ne",)), ("d", 3, ("de",)),
    ("j", 3, ("je",)), ("x", 3, ("xe",)),
    ("am", 3, ("an",)), ("em", 3, ("en",)), ("im", 3, ("in",)), ("om", 3, ("on",)),
    ("um", 3, ("un",)),  # pt viagem
)  # fmt: skip


def number_forms(term: str) -> list[str]:
    """``term`` (as ``terms`` gives it) and the terms its other grammatical number gives,
    for the plurals that are more than an "s": es "ciudad"/"ciudades", "canción"/
    "canciones", "luz"/"luces"; pt "ação"/"ações", "pão"/"pães", "papel"/"papéis",
    "hospital"/"hospitais", "viagem"/"viagens"; en "policy"/"policies". Applied to
    queries only, so the index needs no rebuild; a form that is no word matches nothing."""
    if not term.isalpha():
        return [term]
    for ending, shortest, replacements in _NUMBER_RULES:
        if len(term) >= shortest and term.endswith(ending):
            stem = term[: -len(ending)]
            return [term, *(stem + r for r in replacements)]
    return [term]


_QUERY_STOPWORDS = frozenset(terms(_FUNCTION_WORDS))


def index_text(text: str, term: Callable[[str], str]) -> str:
    """What goes into the FTS5 column: the terms, each passed through ``term`` (identity,
    or a keyed hash when the collection is encrypted)."""
    return " ".join(term(t) for t in terms(text))


def meaningful_terms(text: str) -> list[str]:
    """The query's terms without function words, in order, each once."""
    return list(dict.fromkeys(t for t in terms(text) if t not in _QUERY_STOPWORDS))


def coverage(query_terms: Sequence[str], text: str) -> float:
    """Share of ``query_terms`` that occur in ``text`` (0 for no query terms)."""
    if not query_terms:
        return 0.0
    present = set(terms(text))
    found = sum(1 for t in query_terms if any(f in present for f in number_forms(t)))
    return found / len(query_terms)


def query_terms(text: str) -> list[str]:
    """What a lexical search looks for, in both stores: the query's meaningful terms (all
    its terms when it has none), at most 64, each in either number, each once."""
    unique = (meaningful_terms(text) or list(dict.fromkeys(terms(text))))[:64]
    return list(dict.fromkeys(f for t in unique for f in number_forms(t)))


def match_query(text: str, term: Callable[[str], str]) -> str | None:
    """An FTS5 MATCH expression: any of the query's terms (BM25 ranks documents with more
    and rarer matches first). None when the query has no usable term."""
    wanted = query_terms(text)
    if not wanted:
        return None
    return " OR ".join(f'"{term(t)}"' for t in wanted)
