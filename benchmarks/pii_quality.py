"""PII detection quality: per-entity precision and recall on labelled synthetic text, and
the latency of one check on a 2,000-character text.

For every entity kind the benchmark writes ``--per-kind`` texts holding one valid value
(check digits computed by ``genaiops.guardrails.pii.samples``) and as many holding a
look-alike (the same shape with a wrong check digit, a wrong area code, an impossible IP
octet; for the identifiers without a check digit, the same number with no keyword before
it). Values that count only after their keyword (a person's NIT, a RUT under 1,000,000;
``samples.needs_keyword``) always get one, valid or not. Texts are Spanish, Portuguese and
English sentence templates around the value, with filler sentences full of adversarial
numbers (dates, timestamps, prices, ISBNs, order and version numbers) that carry no label:
anything found in them is a false positive.

Scoring is strict: a detection is a true positive only with the exact offsets and kind of
the label, with one exception: eight bare digits after "DNI" in a text that names no
country fit an Argentine and a Peruvian DNI alike, and the detector reports them as kind
``DNI`` (either country) unless ``dni_country`` is configured. For those texts (flagged
``ambiguous`` here from the text alone: the value's shape and the absence of any country
word) ``DNI`` counts as the right kind; their number is reported per entity, and
``strict_recall`` is the recall without this exception. A second, kind-agnostic score
counts exact spans of any PII kind, which is what masking needs.

Target: precision and recall >= 0.95 for every entity; latency reported, not asserted.

Usage: python benchmarks/pii_quality.py [--per-kind 200] [--seed 7] [--output PATH]
Writes benchmarks/results/pii_quality.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genaiops.guardrails.pii import samples, validators
from genaiops.guardrails.pii.detectors import AMBIGUOUS_DNI, ENTITY_KINDS
from genaiops.guardrails.pii.guard import PIIGuard

RESULTS = Path(__file__).parent / "results" / "pii_quality.json"
TARGET = 0.95
LANGS = ("es", "pt", "en")

# (template, has_keyword). {label} is the kind's keyword; {v} the value.
FRAMES: dict[str, list[tuple[str, bool]]] = {
    "es": [
        ("Mi {label} es {v}, ¿puedes verificarlo?", True),
        ("{label}: {v}", True),
        ("Adjunto el {label} {v} para completar el registro.", True),
        ("Por favor actualiza el registro con {v} y avísame.", False),
    ],
    "pt": [
        ("Meu {label} é {v}, pode verificar?", True),
        ("{label}: {v}", True),
        ("Segue o {label} {v} para completar o cadastro.", True),
        ("Por favor atualize o cadastro com {v} e me avise.", False),
    ],
    "en": [
        ("My {label} is {v}, can you check it?", True),
        ("{label}: {v}", True),
        ("Attached is the {label} {v} to complete the record.", True),
        ("Please update the record with {v} and let me know.", False),
    ],
}
# Where a bare number is an order number or an amount, not PII.
NEGATIVE_FRAMES: dict[str, list[str]] = {
    "es": ["Pedido {v} enviado ayer.", "Total a pagar: {v} pesos.", "El lote {v} llegó bien."],
    "pt": ["Pedido {v} enviado ontem.", "Valor total {v} reais.", "O lote {v} chegou bem."],
    "en": ["Order {v} shipped yesterday.", "Total due: {v} USD.", "Batch {v} arrived fine."],
}
LABELS: dict[str, list[str]] = {
    "EMAIL": ["correo", "e-mail", "email"],
    "PHONE": ["teléfono", "celular", "WhatsApp", "phone", "telefone"],
    "CREDIT_CARD": ["tarjeta", "cartão", "card number"],
    "IBAN": ["IBAN"],
    "IP_ADDRESS": ["IP", "dirección IP", "IP address"],
    "CPF": ["CPF"],
    "CNPJ": ["CNPJ"],
    "CURP": ["CURP"],
    "RFC": ["RFC"],
    "RUT": ["RUT", "RUN"],
    "DNI_AR": ["DNI", "DNI argentino", "D.N.I."],
    "CUIT": ["CUIT", "CUIL"],
    "CEDULA_CO": ["cédula", "C.C.", "cédula de ciudadanía", "CC"],
    "NIT": ["NIT"],
    "DNI_PE": ["DNI", "DNI peruano", "DNI (RENIEC)"],
    "RUC": ["RUC"],
    "RG": ["RG", "R.G."],
}
CONTEXT_ONLY = {"DNI_AR", "CEDULA_CO", "DNI_PE", "RG"}
FILLERS: dict[str, list[str]] = {
    "es": [
        "La reunión fue el 15/03/2024 a las 10:30 y duró dos horas.",
        "El precio subió a $ 12.345.678 en la última factura.",
        "Instalamos la versión 2.3.1 y luego la v1.2.3.4 del cliente.",
        "El pedido nº 48213-77 salió el 2024-01-15 10:30:00.",
        "Compré el libro ISBN 978-84-376-0494-7 por 1.299,90 euros.",
        "Había 12.345.678 unidades en el inventario de marzo.",
    ],
    "pt": [
        "A reunião foi em 15/03/2024 às 10:30 e durou duas horas.",
        "O valor passou para R$ 1.234.567,89 na última fatura.",
        "Instalamos a versão 10.0.19041.1 no servidor ontem.",
        "O protocolo 2024-000123 foi aberto em 2024-01-15T10:30:00Z.",
        "Comprei o livro ISBN 978-3-16-148410-0 por R$ 89,90.",
        "O timestamp 1700000000000 aparece no log às 08:15:42.",
    ],
    "en": [
        "The meeting was on 2024-03-15 at 10:30 and lasted two hours.",
        "The price went up to USD 1,299.00 on the last invoice.",
        "We installed version 4.18.0 and then build 2024.11.3.",
        "Order #123-456-7890 shipped on 01/15/2024 at 9:45 pm.",
        "I bought ISBN 0-306-40615-2 for $ 24.99 last week.",
        "Tracking 1Z999AA10123456784 was updated at 14:02:11.",
    ],
}


@dataclass
class Labelled:
    text: str
    gold: list[tuple[int, int, str]]
    kind: str
    positive: bool
    ambiguous: bool = False


# Words that place a DNI in a country (the benchmark's own list, independent of the
# detector's): a text with none of them around eight bare digits leaves the country open.
_COUNTRY_WORDS = re.compile(
    r"(?i)argentin|buenos aires|renaper|anses|cuil|per[uú]|peruan|lima\b|reniec|sunat"
)


def _ambiguous_dni(kind: str, value: str, text: str) -> bool:
    return (
        kind in ("DNI_AR", "DNI_PE")
        and value.isdigit()
        and len(value) == 8
        and not value.startswith("0")  # an Argentine DNI never starts with 0
        and _COUNTRY_WORDS.search(text) is None
    )


def _compose(rng: random.Random, lang: str, frame: str, label: str, value: str) -> tuple[str, int]:
    before = rng.choice(FILLERS[lang]) + " " if rng.random() < 0.7 else ""
    after = " " + rng.choice(FILLERS[lang]) if rng.random() < 0.7 else ""
    head, tail = frame.split("{v}")
    head = head.replace("{label}", label)
    text = before + head + value + tail.replace("{label}", label) + after
    return text, len(before) + len(head)


def build(kind: str, n: int, rng: random.Random) -> list[Labelled]:
    out: list[Labelled] = []
    for i in range(2 * n):
        positive = i < n
        lang = LANGS[i % 3]
        label = rng.choice(LABELS[kind])
        frames = FRAMES[lang]
        if kind in CONTEXT_ONLY:
            frames = [f for f in frames if f[1]]
        frame = rng.choice(frames)[0]
        if positive:
            value = samples.valid(kind, rng)
        else:
            value = samples.lookalike(kind, rng)
            if kind in CONTEXT_ONLY and not (kind == "DNI_PE" and "-" in value and i % 2):
                # No check digit to get wrong: the look-alike is the number without keyword.
                value = value if kind != "DNI_PE" else value[:8]
                while kind == "RG" and validators.rut(value):
                    # An RG written as 12.345.678-9 without its keyword is a Chilean RUT
                    # when the RUT's check digit happens to fit (1 in 11): the detector
                    # rightly reports it as one, so such look-alikes are drawn again.
                    value = samples.lookalike(kind, rng)
                frame = rng.choice([f for f, kw in FRAMES[lang] if not kw] + NEGATIVE_FRAMES[lang])
        if samples.needs_keyword(kind, value):
            # A person's NIT, a six-digit RUT: their shapes are other numbers' without it.
            frame = rng.choice([f for f, kw in frames if kw])
        text, start = _compose(rng, lang, frame, label, value)
        gold = [(start, start + len(value), kind)] if positive else []
        ambiguous = positive and _ambiguous_dni(kind, value, text)
        out.append(Labelled(text, gold, kind, positive, ambiguous))
    return out


def score(data: list[Labelled], guard: PIIGuard) -> dict[str, Any]:
    kinds = (*ENTITY_KINDS, AMBIGUOUS_DNI)
    per: dict[str, dict[str, int]] = {
        k: {"tp": 0, "fp": 0, "fn": 0, "found_as_other_kind": 0, "ambiguous": 0, "as_dni": 0}
        for k in kinds
    }
    agnostic = {"tp": 0, "fp": 0, "fn": 0}
    errors: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for item in data:
        found = {(s.start, s.end, s.kind) for s in guard.check(item.text).spans}
        gold = set(item.gold)
        if item.ambiguous:
            ((start, end, kind),) = item.gold
            per[kind]["ambiguous"] += 1
            if (start, end, AMBIGUOUS_DNI) in found:
                per[kind]["as_dni"] += 1
                found = (found - {(start, end, AMBIGUOUS_DNI)}) | {(start, end, kind)}
        for start, end, kind in found - gold:
            per[kind]["fp"] += 1
            errors[kind].append({"fp": item.text[start:end], "text": item.text})
        spans_found = {(s, e) for s, e, _ in found}
        for start, end, kind in gold - found:
            per[kind]["fn"] += 1
            per[kind]["found_as_other_kind"] += (start, end) in spans_found
            errors[kind].append({"fn": item.text[start:end], "text": item.text})
        for _, _, kind in gold & found:
            per[kind]["tp"] += 1
        spans_gold = {(s, e) for s, e, _ in gold}
        agnostic["tp"] += len(spans_found & spans_gold)
        agnostic["fp"] += len(spans_found - spans_gold)
        agnostic["fn"] += len(spans_gold - spans_found)
    return {"per_kind": per, "kind_agnostic": agnostic, "errors": errors}


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


def latency(data: list[Labelled], guard: PIIGuard, rng: random.Random) -> dict[str, Any]:
    texts = []
    for _ in range(50):
        parts: list[str] = []
        while sum(map(len, parts)) < 2000:
            parts.append(rng.choice(data).text)
        texts.append(" ".join(parts)[:2000])
    clean = " ".join(FILLERS["es"] + FILLERS["pt"] + FILLERS["en"]) * 5
    result: dict[str, Any] = {"gc": "disabled while timing", "load_average": os.getloadavg()}
    for name, pool in (("with_pii", texts), ("fillers_only", [clean[:2000]])):
        for t in pool:
            guard.check(t)  # warm-up
        times = []
        gc.collect()
        gc.disable()  # a collection of the benchmark's own data is not the guard's latency
        try:
            for _ in range(40 if len(pool) > 1 else 2000):
                for t in pool:
                    t0 = time.perf_counter()
                    guard.check(t)
                    times.append((time.perf_counter() - t0) * 1000)
        finally:
            gc.enable()
        times.sort()
        result[name] = {
            "text_chars": 2000,
            "checks": len(times),
            "p50_ms": round(statistics.median(times), 4),
            "p95_ms": round(times[int(len(times) * 0.95)], 4),
            "mean_spans": round(sum(len(guard.check(t).spans) for t in pool) / len(pool), 1),
        }
    return result


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    guard = PIIGuard()
    data = [item for kind in ENTITY_KINDS for item in build(kind, args.per_kind, rng)]
    scored = score(data, guard)
    rows: dict[str, Any] = {}
    for kind in ENTITY_KINDS:
        c = scored["per_kind"][kind]
        p, r = _ratio(c["tp"], c["tp"] + c["fp"]), _ratio(c["tp"], c["tp"] + c["fn"])
        any_kind = _ratio(c["tp"] + c["found_as_other_kind"], c["tp"] + c["fn"])
        rows[kind] = c | {
            "precision": p,
            "recall": r,
            "strict_recall": _ratio(c["tp"] - c["as_dni"], c["tp"] + c["fn"]),
            "recall_any_kind": any_kind,
            "meets_target": p >= TARGET and r >= TARGET,
        }
    dni_fp = scored["per_kind"][AMBIGUOUS_DNI]["fp"]
    a = scored["kind_agnostic"]
    agnostic = a | {
        "precision": _ratio(a["tp"], a["tp"] + a["fp"]),
        "recall": _ratio(a["tp"], a["tp"] + a["fn"]),
    }
    lat = latency(data, guard, rng)
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {"per_kind": args.per_kind, "seed": args.seed, "languages": list(LANGS)},
        "counts": {
            "texts": len(data),
            "positive_texts": sum(d.positive for d in data),
            "negative_texts": sum(not d.positive for d in data),
            "labelled_values": sum(len(d.gold) for d in data),
        },
        "target": f"precision and recall >= {TARGET} per entity",
        "per_entity": rows,
        "dni_either_country_false_positives": dni_fp,
        "kind_agnostic": agnostic,
        "latency": lat,
        "error_examples": {k: v[:5] for k, v in scored["errors"].items() if v},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    report(results)
    print(f"saved {args.output}")


def report(results: dict[str, Any]) -> None:
    print(
        f"{'entity':<12} {'TP':>5} {'FP':>4} {'FN':>4} {'precision':>10} {'recall':>8}"
        f" {'strict':>7} {'recall(any kind)':>17}  target >= {TARGET}"
    )
    for kind, r in results["per_entity"].items():
        ok = "ok" if r["meets_target"] else "MISSED"
        print(
            f"{kind:<12} {r['tp']:>5} {r['fp']:>4} {r['fn']:>4} "
            f"{r['precision']:>10.4f} {r['recall']:>8.4f} {r['strict_recall']:>7.4f}"
            f" {r['recall_any_kind']:>17.4f}  {ok}"
        )
    ambiguous = {k: r["ambiguous"] for k, r in results["per_entity"].items() if r["ambiguous"]}
    print(f"texts that leave a DNI's country open (kind DNI accepted): {ambiguous}")
    print(f"DNI (either country) false positives: {results['dni_either_country_false_positives']}")
    a = results["kind_agnostic"]
    print(
        f"{'any kind':<12} {a['tp']:>5} {a['fp']:>4} {a['fn']:>4} "
        f"{a['precision']:>10.4f} {a['recall']:>8.4f}"
    )
    lat = results["latency"]
    for name in ("with_pii", "fillers_only"):
        p50, p95 = lat[name]["p50_ms"], lat[name]["p95_ms"]
        print(f"latency {name} (2,000 chars): p50 {p50:.3f} ms, p95 {p95:.3f} ms")
    print(f"load average during the run: {lat['load_average']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS)
    main(parser.parse_args())
