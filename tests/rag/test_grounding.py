"""The language a grounded answer or a "not found" answer is written in: the question's,
read from its words with accents folded, or the collection's when the words say nothing."""

from __future__ import annotations

import pytest

from genaiops.rag.grounding import detect_language, not_found_answer


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
