"""Grounded prompts: the retrieved chunks, numbered, inside the model's context window, with
the instruction to answer only from them and cite them; and the citations returned to the
caller. When nothing relevant was retrieved the gateway answers that it does not know, in
the question's language, without asking the model (a small model asked anyway invents).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genaiops.engines.base import ChatMessage
from genaiops.rag import lexical
from genaiops.rag.chunking import count_tokens
from genaiops.rag.service import Hit

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
_HINTS = {
    "es": frozenset(
        {"el", "la", "los", "las", "del", "que", "qué", "por", "para", "una", "es", "cómo"}
        | {"cuál", "dónde", "está", "son", "muy", "y"}
    ),
    "pt": frozenset(
        {"o", "os", "as", "do", "da", "dos", "das", "que", "por", "para", "uma", "é", "como"}
        | {"qual", "onde", "está", "são", "muito", "e", "não"}
    ),
    "en": frozenset(
        {"the", "is", "are", "what", "how", "which", "where", "who", "does", "do", "of"}
        | {"and", "to", "in", "for", "a", "an"}
    ),
}
# Characters that only one of the two Iberian languages uses.
_MARKS = {"es": set("ñ¿¡"), "pt": set("ãõç")}
SNIPPET_CHARS = 240


def detect_language(text: str, default: str = "en") -> str:
    words = lexical.fold(text).split()
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
    (approximate tokens, best first), the caller's earlier messages, then the question."""
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
            break
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
