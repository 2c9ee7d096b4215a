"""The language a grounded answer or a "not found" answer is written in: the question's,
read from its words with accents folded, or the collection's when the words say nothing."""

from __future__ import annotations

import pytest

from genaiops.config import RagSettings
from genaiops.rag.fusion import Hit
from genaiops.rag.grounding import detect_language, ground, not_found_answer, relevant


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Quem ganhou a Copa do Mundo de 2002?", "pt"),
        ("Qual é a capital do Canadá?", "pt"),
        ("Quantos dias de ferias eu tenho no Brasil", "pt"),  # typed without accents
        ("Posso levar meu cachorro?", "pt"),
        ("¿Quién ganó el Mundial de 1986?", "es"),
        ("Cuantos dias de vacaciones tengo en Mexico", "es"),
        ("¿Cómo funciona el reembolso de gastos?", "es"),
        ("How do replicas share limits?", "en"),
        ("Is there a dress code?", "en"),
        ("What is LoRA?", "en"),
    ],
)
def test_the_questions_language(question: str, language: str) -> None:
    assert detect_language(question, default="xx") == language


def test_words_that_say_nothing_fall_back_to_the_default() -> None:
    assert detect_language("BitLocker FileVault 72 horas VPN", default="es") == "es"
    assert detect_language("PagedAttention KV cache", default="pt") == "pt"


def test_not_found_answers_in_the_questions_language() -> None:
    assert not_found_answer("kb", "Quem escreveu Dom Casmurro?", "es").startswith("Não encontrei")
    assert not_found_answer("kb", "Who painted the Mona Lisa?", "es").startswith("I could not")
    assert not_found_answer("kb", "¿Quién pintó la Mona Lisa?", "pt").startswith("No encontré")


def _hit(chunk_id: int, text: str, title: str = "Doc", heading: str | None = None) -> Hit:
    return Hit(chunk_id, chunk_id, text, 1.0, f"doc{chunk_id}.md", title, None, heading, None,
               {}, ["lexical"], {"lexical": 1}, {"lexical": 1.0})  # fmt: skip


def test_a_source_too_long_for_the_prompt_is_skipped_not_the_rest() -> None:
    huge = _hit(1, "vacaciones-politica-" + "x" * 8_000)
    small = _hit(2, "Cada colaborador tiene 15 días de vacaciones por año.")
    grounded = ground([], "¿Cuál es la política de vacaciones?", [huge, small], 500)
    assert [c["chunk_id"] for c in grounded.citations] == [2]
    assert "15 días" in grounded.messages[0].content and "xxxx" not in grounded.messages[0].content


def test_the_relevance_gate_reads_the_title_and_heading_the_index_holds() -> None:
    body = "Es una técnica de ajuste fino que congela los pesos del modelo base."
    headed = _hit(1, body, title="Guía", heading="LoRA")
    unrelated = _hit(2, body, title="Guía", heading="Cuantización")
    kept = relevant([headed, unrelated], "¿Qué es LoRA?", RagSettings(), "lexical")
    assert [h.chunk_id for h in kept] == [1]
