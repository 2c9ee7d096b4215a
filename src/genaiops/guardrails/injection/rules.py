"""Weighted regex rules for prompt injection and jailbreaks in English, Spanish, Portuguese.

This module owns the hand-written rules and how their hits become a score. Rules match the
folded views of ``normalize`` (lowercase, no accents, obfuscation undone), so a pattern is
written once in plain lowercase ASCII. A space in a pattern means "a short run of spaces or
punctuation, or nothing" (spaced-out letters are glued together by the normaliser, so
"ignoreallpreviousinstructions" must match too); ``<NAME>`` inserts a shared vocabulary
entry (``_VOCAB``).

The rules are a table (``rule_table.TABLE``, then ``rule_table_paraphrases.PARAPHRASES``),
one block per rule: a header ``id; category; lang; weight[; asks]``, needle lines
(``  = a|b``) and pattern lines (four spaces of indent, concatenated as they are). A table
keeps 90-odd regexes readable and diffable; it is parsed and compiled once, at import, like
any module-level regex.

Precision over recall: every rule targets phrasing aimed *at the model* (imperatives,
possessives such as "your system prompt", persona adjectives such as "unrestricted"), and
the classifier covers paraphrases. Benign look-alikes ("ignore the typos", "act as a travel
agent", "what is prompt injection?") must not fire. Hits inside a question about the
attack, or inside quotes in a text that talks about detection or examples, are down-weighted
(x0.35): someone asking how to block "ignore previous instructions" is not attacking. That
also lets an attacker phrase an attack as such a question; the classifier is the backstop.

Speed: each rule lists cheap substrings (``needles``); a rule's regex runs only on views
that contain one of them, so a benign prompt costs a few substring searches per rule (a
test checks on every dataset prompt that the needles never hide a match). Filler words
always need a separator after them, so no pattern backtracks catastrophically.

The module is longer than most because of the table (about 400 lines of data); splitting
it per language would scatter the shared vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genaiops.guardrails.injection.normalize import Normalized
from genaiops.guardrails.injection.rule_table import TABLE
from genaiops.guardrails.injection.rule_table_paraphrases import PARAPHRASES

_SEP = r"[\W_]{0,6}"
# A filler word must be followed by at least one separator: with an optional separator,
# "(?:\w+ ){0,4}" could split one long word in many ways (catastrophic backtracking).
_FILLER = (r"(?:\w+ )", r"(?:\w+[\W_]{1,6})")
_PLACEHOLDER = re.compile(r"<([A-Z_]+)>")

_VOCAB = {
    "EN_INSTR": (
        r"(?:instructions?|prompts?|directions|directives|rules|guidelines|commands|guidance|"
        r"orders|constraints|programming)"
    ),
    "EN_PREV": (
        r"(?:previous|prior|above|preceding|earlier|former|original|initial|system|old|existing)"
    ),
    "EN_UNRESTRICTED": (
        r"(?:unrestricted|unfiltered|uncensored|unlimited|unbound|jailbroken|amoral|unethical|"
        r"evil|rogue|lawless|without (?:any )?(?:restrictions|rules|limits|filters|limitations|"
        r"ethics|morals|guidelines|censorship)|with no (?:restrictions|rules|limits|filters|"
        r"ethics|morals|guidelines))"
    ),
    "ES_INSTR": (
        r"(?:instrucciones|indicaciones|ordenes|reglas|directrices|normas|consignas|directivas|"
        r"restricciones|pautas|orientaciones)"
    ),
    "ES_PREV": (
        r"(?:anteriores|previas|originales|iniciales|de arriba|del sistema|que te (?:dieron|di|"
        r"han dado)|que recibiste|recibidas)"
    ),
    "ES_UNRESTRICTED": (
        r"(?:sin (?:ninguna |ningun )?(?:restricciones|restriccion|reglas|regla|limites|limite|"
        r"filtros|filtro|censura|etica|moral|normas|norma)|libre de (?:toda |"
        r"cualquier )?(?:restriccion|restricciones|regla|reglas|censura)|malvad[oa]|"
        r"sin escrupulos)"
    ),
    "PT_INSTR": (
        r"(?:instrucoes|orientacoes|ordens|regras|diretrizes|comandos|diretivas|restricoes)"
    ),
    "PT_PREV": (
        r"(?:anteriores|previas|originais|iniciais|acima|do sistema|que (?:voce )?recebeu|"
        r"que te deram)"
    ),
    "PT_UNRESTRICTED": (
        r"(?:sem (?:nenhuma |nenhum |qualquer )?(?:restricoes|restricao|regras|regra|limites|"
        r"limite|filtros|filtro|censura|etica|moral|normas|norma)|livre de (?:toda |"
        r"qualquer )?(?:restricao|restricoes|regra|regras|censura)|malvad[oa]|sem escrupulos)"
    ),
    # "developer mode on my Android phone" is a device setting, not a jailbreak.
    "NOT_DEVICE": (
        r"(?!(?: (?:on|in|for|of|en|no|na|do|da|del|de|em|nas|nos|at|under))? (?:my |your |the |"
        r"a |an |mi |tu |el |la |meu |seu |o |a |um |una? |las |los |as |os )?(?:android|ios|"
        r"iphone|ipad|chrome|chromebook|firefox|edge|windows|macos|mac|samsung|galaxy|pixel|"
        r"xiaomi|motorola|huawei|linux|phone|device|tablet|browser|celular|telefono|movil|"
        r"dispositivo|navegador|aparelho|smartphone|router|tv|xbox|playstation|app|vs ?code|"
        r"visual studio|settings|ajustes|configuracoes|configuracao|configuracion|"
        r"configuraciones|opciones|opcoes|options|laptop|notebook|computador|computadora|pc)\b)"
    ),
    # Instructions of a form, a manual, a procedure ("disregard the previous instructions
    # for the expense form"): a change of paperwork, not of the model's instructions.
    "NOT_DOCUMENT": (
        r"(?! (?:do|da|dos|das|del|de la|de los|de las|for the|of the|for|of|para o|para a|"
        r"para el|para la|sobre o|sobre a|sobre el|sobre la) (?:\w+ )?(?:formulario|"
        r"formularios|form|forms|manual|procedimento|procedimiento|procedure|processo|proceso|"
        r"relatorio|planilha|spreadsheet|contrato|contract|edital|guia|guide|template|"
        r"plantilla|checklist|instalador|installer|reembolso|reimbursement|pedido|order|"
        r"fornecedor|proveedor|vendor|receita|receta|prescription|projeto|proyecto|project|"
        r"cadastro|registro|registration|inscricao|inscripcion|exame|examen|exam|prova|"
        r"equipamento|produto|producto|product)\b)"
    ),
    # "do not follow instructions from third parties": a warning against fraud.
    "NOT_THIRD_PARTY": (
        r"(?! (?:de|da|do|dos|das|from|of) (?:\w+ )?(?:terceiros|terceros|third parties|"
        r"desconhecidos|desconocidos|strangers|estranhos|extranos|golpistas|estafadores|"
        r"scammers|fraudadores|remetentes|unknown|pessoas|personas|people|fontes|fuentes|"
        r"sources|sites|links|mensagens|mensajes|messages|e ?mails|correos|ligacoes|llamadas|"
        r"calls|supostos|supuestos|falsos|fake)\b)"
    ),
}


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    lang: str  # "en", "es", "pt" or "any"
    weight: float
    needles: tuple[str, ...]  # the regex runs only on views containing one of these
    pattern: re.Pattern[str]
    # The attack itself is a question ("what is your system prompt?"): no question discount.
    asks: bool = False


@dataclass(frozen=True)
class Hit:
    rule: Rule
    start: int  # offsets in the original text
    end: int
    weight: float  # after context down-weighting
    source: str  # the view: "text", "leet", "leet-l", "base64", "hex"
    mention: bool = False  # talked about, not addressed to the model (down-weighted)


def _rx(src: str) -> re.Pattern[str]:
    src = _PLACEHOLDER.sub(lambda m: _VOCAB[m.group(1)], src)
    return re.compile(src.replace(*_FILLER).replace(" ", _SEP))


def _parse(table: str) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    head: list[str] = []
    needles: list[str] = []
    pattern: list[str] = []

    def flush() -> None:
        if head:
            rid, category, lang, weight, *flags = head
            compiled = _rx("".join(pattern))
            rules.append(
                Rule(rid, category, lang, float(weight), tuple(needles), compiled, "asks" in flags)
            )

    for line in table.splitlines():
        if line.startswith("    "):
            pattern.append(line[4:])
        elif line.startswith("  = "):
            needles.extend(line[4:].split("|"))
        elif line and not line.startswith("#"):
            flush()
            head, needles, pattern = line.split("; "), [], []
    flush()
    return tuple(rules)


RULES = _parse(TABLE + PARAPHRASES)

# Questions about an attack, and quoted examples in texts about detection, are not attacks.
_QUESTION = re.compile(
    r"^\W*(?:[^\W_]+\W+){0,3}?(?:what|how|why|which|is (?:it|there|this)|are there|explain|"
    r"define|describe|que|como|por ?que|para que|cual|cuales|o que|qual|quais|explica|explique|"
    r"defina|descreva)\b"
)
_META = re.compile(
    r"\b(?:detects?|detecting|detection|block|blocked|blocking|refuse|classifier|unit test|"
    r"test case|dataset|security|defen[cs]e|protect|injection|jailbreaks?|guardrails?|regex|"
    r"regular expression|red team|detecte|detectar|deteccion|bloquear|rechace|rechazar|"
    r"clasificador|seguridad|protege|inyeccion|recusar|classificador|seguranca|proteger|injecao|"
    r"expresion regular|expressao regular)\b"
)
_SENTENCE_END = re.compile(r"[.!?\n]")
_QUOTES = (('"', '"'), ("“", "”"), ("«", "»"), ("'", "'"), ("`", "`"), ("‘", "’"))
MENTION_FACTOR = 0.35


def _sentence(text: str, start: int, end: int) -> str:
    left = max((m.end() for m in _SENTENCE_END.finditer(text, max(0, start - 300), start)),
               default=max(0, start - 300))  # fmt: skip
    right_m = _SENTENCE_END.search(text, end)
    right = right_m.end() if right_m else len(text)
    return text[left:right]


def _quoted(text: str, start: int, end: int) -> bool:
    left, right = text[max(0, start - 120) : start], text[end : end + 120]
    for open_q, close_q in _QUOTES:
        if open_q in left and close_q in right:
            if open_q == close_q and left.count(open_q) % 2 == 0:
                continue
            return True
    return False


def is_mention(text: str, start: int, end: int, rule: Rule | None = None) -> bool:
    """True when the match is talked about rather than addressed to the model."""
    sentence = _sentence(text, start, end).strip()
    asks = rule is not None and rule.asks
    if not asks and sentence.endswith("?") and _QUESTION.match(sentence.lstrip("¿¡ ")):
        return True
    return _quoted(text, start, end) and _META.search(text) is not None


def match(norm: Normalized) -> list[Hit]:
    """All rule hits over the views of ``norm``, one per (rule, original span)."""
    hits: dict[tuple[str, int, int], Hit] = {}
    for view in norm.views:
        for rule in RULES:
            if not any(n in view.text for n in rule.needles):
                continue
            for m in rule.pattern.finditer(view.text):
                start, end = view.to_original(m.start(), m.end())
                key = (rule.id, start, end)
                if key in hits:
                    continue
                mention = view.span is None and is_mention(view.text, m.start(), m.end(), rule)
                weight = rule.weight * (MENTION_FACTOR if mention else 1.0)
                hits[key] = Hit(rule, start, end, weight, view.source, mention)
    return sorted(hits.values(), key=lambda h: (h.start, -h.weight))


def score(hits: list[Hit]) -> float:
    """Noisy-OR of the strongest direct hit of each rule: independent evidence adds up and
    the score never exceeds 1. Mentions never add up (five quoted examples in a security
    question are still a question): they count only through the strongest of them."""
    best: dict[str, float] = {}
    for h in hits:
        if not h.mention:
            best[h.rule.id] = max(best.get(h.rule.id, 0.0), h.weight)
    miss = 1.0
    for w in best.values():
        miss *= 1.0 - w
    mentions = max((h.weight for h in hits if h.mention), default=0.0)
    return max(1.0 - miss, mentions)
