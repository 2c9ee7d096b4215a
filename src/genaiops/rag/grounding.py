"""Grounded prompts: the retrieved chunks, numbered, inside the model's context window, with
the instruction to answer only from them and cite them; and the citations returned to the
caller. ``relevant`` decides which hits are about the question at all; when none is, the
gateway answers that it does not know, in the question's language, without asking the
model (a small model asked anyway invents).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genaiops.engines.base import ChatMessage
from genaiops.rag import lexical
from genaiops.rag.chunking import count_tokens
from genaiops.rag.fusion import Hit

if TYPE_CHECKING:
    from genaiops.config import RagSettings

_INSTRUCTIONS = {
    "en": (
        "Answer the question using only the numbered sources below. Cite the sources you "
        "use with their numbers in square brackets, like [1]. If the sources do not contain "
        "the answer, say that you do not know."
    ),
    "es": (
        "Responde a la pregunta usando solo las fuentes numeradas de abajo. Cita las fuentes "
        "que uses con su número entre corchetes, como [1]. Si las fuentes no contienen la "
        "respuesta, di que no lo sabes."
    ),
    "pt": (
        "Responda à pergunta usando apenas as fontes numeradas abaixo. Cite as fontes que "
        "usar com o número entre colchetes, como [1]. Se as fontes não contiverem a resposta, "
        "diga que não sabe."
    ),
}
_NOT_FOUND = {
    "en": "I could not find anything about this in the collection '{name}'.",
    "es": "No encontré información sobre esto en la colección '{name}'.",
    "pt": "Não encontrei informações sobre isso na coleção '{name}'.",
}
# Common words of one language more than the others (accents folded, as questions are
# read); words the three share in writing ("a", "do", "como", "que") vote for none.
_HINTS = {
    "es": frozenset(
        {"el", "la", "los", "las", "del", "al", "en", "con", "es", "son", "fue", "hay", "y"}
        | {"quien", "quienes", "cual", "cuales", "donde", "cuando", "cuanto", "cuantos"}
        | {"esta", "estan", "muy", "pero", "mi", "yo", "usted", "puedo", "tengo", "mas", "ya"}
        | {"una", "unos", "unas", "hacer", "tiene", "tienen", "debo", "sobre", "eso", "esto"}
    ),
    "pt": frozenset(
        {"o", "os", "as", "da", "dos", "das", "em", "no", "na", "nos", "nas", "um", "ao"}
        | {"quem", "qual", "quais", "onde", "quando", "quanto", "quantos", "voce", "voces"}
        | {"nao", "sao", "muito", "mas", "meu", "minha", "eu", "posso", "tenho", "mais", "ja"}
        | {"uma", "uns", "umas", "fazer", "tem", "devo", "sobre", "isso", "isto", "e", "foi"}
    ),
    "en": frozenset(
        {"the", "is", "are", "was", "what", "how", "which", "where", "who", "when", "does"}
        | {"of", "and", "to", "in", "for", "an", "can", "my", "i", "you", "it", "this"}
        | {"there", "with", "have", "has", "should", "about", "many", "much", "will"}
    ),
}
# Characters that only one of the two Iberian languages uses.
_MARKS = {"es": set("ñ¿¡"), "pt": set("ãõç")}
_WORDS = re.compile(r"\w+", re.UNICODE)
SNIPPET_CHARS = 240


def detect_language(text: str, default: str = "en") -> str:
    words = _WORDS.findall(lexical.fold(text))
    raw = set(text.lower())
    scores = {lang: sum(w in hints for w in words) for lang, hints in _HINTS.items()}
    for lang, marks in _MARKS.items():
        if raw & marks:
            scores[lang] += 3
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] > 0 else default


@dataclass
class Grounded:
    messages: list[ChatMessage]
    citations: list[dict[str, Any]]
    language: str


def citation(number: int, hit: Hit) -> dict[str, Any]:
    snippet = " ".join(hit.text.split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[: SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return {
        "index": number,
        "document_id": hit.document_id,
        "chunk_id": hit.chunk_id,
        "source": hit.source,
        "title": hit.title,
        "page": hit.page,
        "heading": hit.heading,
        "locator": hit.locator,
        "score": round(hit.score, 6),
        "snippet": snippet,
    }


def not_found_answer(collection: str, question: str, default_language: str = "en") -> str:
    return _NOT_FOUND[detect_language(question, default_language)].format(name=collection)


def ground(
    history: Sequence[ChatMessage],
    question: str,
    hits: Sequence[Hit],
    budget_tokens: int,
    default_language: str = "en",
) -> Grounded:
    """Messages for the model: an instruction with as many sources as fit ``budget_tokens``
    (approximate tokens, best first; one too long for what is left is skipped, not the
    end of the list), the caller's earlier messages, then the question."""
    language = detect_language(question, default_language)
    header = _INSTRUCTIONS[language]
    used = count_tokens(header) + count_tokens(question) + 16
    used += sum(count_tokens(m.content) for m in history)
    blocks: list[str] = []
    cited: list[dict[str, Any]] = []
    for hit in hits:
        where = hit.title + (f", p. {hit.page}" if hit.page else "")
        if hit.heading:
            where += f" — {hit.heading}"
        block = f"[{len(blocks) + 1}] ({where})\n{hit.text.strip()}"
        cost = count_tokens(block) + 4
        if used + cost > budget_tokens:
            continue  # a smaller source further down may still fit
        blocks.append(block)
        cited.append(citation(len(blocks), hit))
        used += cost
    system = header + "\n\n" + "\n\n".join(blocks)
    earlier_system = [m for m in history if m.role in ("system", "developer")]
    rest = [m for m in history if m.role not in ("system", "developer")]
    if earlier_system:
        system = "\n\n".join(m.content for m in earlier_system) + "\n\n" + system
    messages = [ChatMessage("system", system), *rest, ChatMessage("user", question)]
    return Grounded(messages, cited, language)


def _indexed_text(hit: Hit) -> str:
    return "\n".join(part for part in (hit.title, hit.heading, hit.text) if part)


def relevant(hits: Sequence[Hit], question: str, rag: RagSettings, mode: str) -> list[Hit]:
    """Hits worth grounding an answer to ``question`` on. A dense match counts at
    ``rag.min_dense_score``. A lexical match must hold ``rag.min_lexical_coverage`` of the
    question's meaningful terms (one shared word of a five-word question is not a topic)
    and, where dense scores were computed, be at least ``rag.min_lexical_dense`` similar
    too, unless it holds every term (names, codes: what BM25 is for)."""
    wanted = lexical.meaningful_terms(question)

    def counts(hit: Hit) -> bool:
        dense = hit.scores.get("dense")
        if dense is not None and dense >= rag.min_dense_score:
            return True
        if "lexical" not in hit.scores:
            return False
        # The lexical index holds the title and heading with the text: so does the gate
        # ("¿Qué es LoRA?" against a section headed "LoRA").
        share = lexical.coverage(wanted, _indexed_text(hit))
        if mode == "lexical" or share >= 1.0:
            return share >= rag.min_lexical_coverage
        similar = dense is not None and dense >= rag.min_lexical_dense
        return share >= rag.min_lexical_coverage and similar

    return [h for h in hits if counts(h)]
