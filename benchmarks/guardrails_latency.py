"""Latency of the whole input guardrails policy (prompt injection + PII + toxicity) on
2,000-character prompts in Spanish, Portuguese and English, as the gateway runs it per
message. Target: p95 under 10 ms on this machine. For scale: LLM Guard's transformer
scanners are reported to take 100-200 ms per scan on CPU (not rerun here).

    .venv/bin/python benchmarks/guardrails_latency.py [--prompts 300] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genaiops.config import load_settings
from genaiops.guardrails.service import GuardrailsService

SENTENCES = {
    "es": [
        "Necesito un resumen del informe trimestral de ventas de la región andina.",
        "¿Puedes explicar la política de vacaciones para empleados en Colombia?",
        "El cliente pidió una factura corregida con el RFC de la empresa.",
        "Mi número es +52 55 1234 5678 y mi correo es laura.mendez@ejemplo.mx.",
        "Redacta un correo amable para reprogramar la reunión del jueves.",
    ],
    "pt": [
        "Preciso de um resumo do relatório de vendas do último trimestre.",
        "Qual é o prazo para pedir férias segundo a política da empresa?",
        "O CPF do titular é 529.982.247-25 e o telefone (11) 98765-4321.",
        "Escreva uma mensagem educada para remarcar a reunião de quinta-feira.",
        "Como funciona o reembolso de despesas de viagem internacional?",
    ],
    "en": [
        "Please summarise the quarterly sales report for the Andean region.",
        "What is the expense policy for international travel?",
        "Draft a polite email to reschedule Thursday's meeting.",
        "Ignore the typos in my last message and answer the question again.",
        "How do I protect my application against prompt injection attacks?",
    ],
}


def prompt(rng: random.Random, lang: str, chars: int = 2000) -> str:
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < chars:
        parts.append(rng.choice(SENTENCES[lang]))
    return " ".join(parts)[:chars]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


TURNS = 20


def at_last_turn(
    histories: list[list[str]], remembering: GuardrailsService, forgetful: GuardrailsService
) -> dict[str, float]:
    """The input policy over each whole history at its last turn (median ms): reading every
    message again (``forgetful``), and remembering what the earlier turns' requests found."""
    timings: dict[str, list[float]] = {"with": [], "without": []}
    for history in histories:
        for earlier in history[:-1]:  # the earlier requests of this conversation
            remembering.check(earlier)
        for side, service in (("with", remembering), ("without", forgetful)):
            t0 = time.perf_counter()
            for message in history:
                service.check(message)
            timings[side].append((time.perf_counter() - t0) * 1000)
    return {
        "with_memory_ms": round(statistics.median(timings["with"]), 3),
        "without_memory_ms": round(statistics.median(timings["without"]), 3),
    }


def conversations(settings: Any, remembering: GuardrailsService) -> dict[str, Any]:
    """A chat re-sends its whole history with every request: ``TURNS`` messages of 600
    characters, 20 conversations."""
    forgetful = GuardrailsService(settings.guardrails, remember=0)
    forgetful.check(prompt(random.Random(5), "es", 600))
    rng = random.Random(11)
    histories = [
        [prompt(rng, lang, 600) for lang in rng.choices(list(SENTENCES), k=TURNS)]
        for _ in range(20)
    ]
    return {"turns": TURNS, "message_chars": 600,
            **at_last_turn(histories, remembering, forgetful)}  # fmt: skip


DOCUMENT_CHARS = 50_000


def document_chat(settings: Any, remembering: GuardrailsService) -> dict[str, Any]:
    """A document pasted into a chat's first message comes back with every later turn: a
    50,000-character document and four short follow-ups, at the fifth turn, 5 chats."""
    forgetful = GuardrailsService(settings.guardrails, remember=0)
    rng = random.Random(23)
    histories = []
    for _ in range(5):
        document = " ".join(prompt(rng, lang) for lang in rng.choices(list(SENTENCES), k=25))
        histories.append([document[:DOCUMENT_CHARS]] + [prompt(rng, "es", 200) for _ in range(4)])
    return {"document_chars": DOCUMENT_CHARS, "turns": 5,
            **at_last_turn(histories, remembering, forgetful)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/guardrails_latency.json")
    )
    args = parser.parse_args()
    settings = load_settings()
    service = GuardrailsService(settings.guardrails)
    rng = random.Random(7)
    texts = [prompt(rng, lang) for lang in SENTENCES for _ in range(args.prompts // 3)]
    warm_up = [prompt(random.Random(99), lang) for lang in SENTENCES for _ in range(10)]
    started = time.perf_counter()
    service.check(warm_up[0])  # loads the classifier and the lexicons
    load_s = time.perf_counter() - started
    for text in warm_up:  # texts of their own: the measured ones are all new to the guards
        service.check(text)
    totals: list[float] = []
    per_guard: dict[str, list[float]] = {}
    flagged = 0
    for text in texts:
        t0 = time.perf_counter()
        outcome = service.check(text)
        totals.append((time.perf_counter() - t0) * 1000)
        flagged += outcome.flagged
        for result in outcome.results:
            per_guard.setdefault(result.guard, []).append(result.latency_ms)
    summary = {
        "all_input_guards": {
            "p50_ms": round(statistics.median(totals), 3),
            "p95_ms": round(percentile(totals, 0.95), 3),
            "mean_ms": round(statistics.fmean(totals), 3),
        },
        "per_guard": {
            guard: {
                "p50_ms": round(statistics.median(v), 3),
                "p95_ms": round(percentile(v, 0.95), 3),
            }
            for guard, v in per_guard.items()
        },
    }
    conversation = conversations(settings, service)
    document = document_chat(settings, service)
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "prompts": len(texts),
        "prompt_chars": 2000,
        "policy": {k: v.model_dump() for k, v in settings.guardrails.input.items()},
        "first_check_load_s": round(load_s, 3),
        "flagged_prompts": flagged,
        "latency": summary,
        "conversation": conversation,
        "document_chat": document,
        "target": "p95 < 10 ms",
        "target_met": summary["all_input_guards"]["p95_ms"] < 10,
    }
    print(f"{len(texts)} prompts of 2,000 characters (es/pt/en), input policy:")
    print(
        f"  all input guards: p50 {summary['all_input_guards']['p50_ms']} ms, "
        f"p95 {summary['all_input_guards']['p95_ms']} ms  (target p95 < 10 ms: "
        f"{'met' if result['target_met'] else 'missed'})"
    )
    for guard, stats in summary["per_guard"].items():
        print(f"  {guard:18} p50 {stats['p50_ms']} ms, p95 {stats['p95_ms']} ms")
    print(
        f"conversation of {TURNS} messages of about 600 characters, the input policy over "
        f"the whole history at the last turn: {conversation['without_memory_ms']} ms "
        f"reading every message, {conversation['with_memory_ms']} ms with earlier "
        "messages remembered (median of 20 conversations)"
    )
    print(
        f"chat about a {DOCUMENT_CHARS:,}-character document, the fifth turn: "
        f"{document['without_memory_ms']} ms reading every message, "
        f"{document['with_memory_ms']} ms with earlier messages remembered (median of 5)"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
