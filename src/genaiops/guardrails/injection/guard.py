"""``InjectionGuard``: prompt-injection and jailbreak detection (English, Spanish, Portuguese).

This module owns how the two detectors are combined and what the guard reports.

* Rules (``rules.py``) are precise and explainable: each hit is a span with its category,
  rule id and language. Their score is a noisy-OR of rule weights (0.6-0.95).
* The classifier (``classifier.py``) catches paraphrases the rules do not know.

Combination: ``score = max(rule score, calibrated classifier probability)``. A hand-set
maximum rather than a learned blend: with a few hundred training prompts a stacked model
would mostly learn the rule weights back, the maximum keeps each detector's meaning ("a
rule fired" is enough; "the classifier is sure" is enough), and it is monotone, so neither
detector can hide the other. The classifier's probability is calibrated so that its
operating point, chosen by grouped cross-validation on the train split (the most recall
within a 0.04 false-positive rate of the combined guard), lands on 0.5; the default
threshold (option ``threshold``) is therefore 0.5 for both detectors, and the test split
is never used to choose anything.

Spans: one per rule hit (hits inside a decoded base64/hex payload cover the encoded run,
``detail["encoding"]`` says which), plus one span over the whole text with kind
``"classifier"`` when the text is flagged and only the classifier is above the threshold.
Rule hits below the threshold are still reported (a quoted example in a question about
injection), the ``flagged`` flag is what a policy acts on.

The model is loaded on the first check (scikit-learn import included), or before any by
``warm`` (the server calls it at start-up), and shared by every guard using the same file.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from genaiops.guardrails.base import GuardResult, Span
from genaiops.guardrails.injection import classifier, rules, semantic
from genaiops.guardrails.injection.normalize import Normalized, normalize

DEFAULT_THRESHOLD = classifier.GUARD_THRESHOLD
LANG_NAMES = {"en": "English", "es": "Spanish", "pt": "Portuguese"}
_OPTIONS = {"threshold", "classifier", "semantic", "model", "max_classify_chars"}

# Frequent words that tell the three languages apart (shared ones count for both).
_STOPWORDS = {
    "en": re.compile(
        r"\b(?:the|and|you|your|is|are|to|of|in|that|this|with|for|what|how|please|me|my|it|be|"
        r"not|from|an|all)\b"
    ),
    "es": re.compile(
        r"\b(?:el|la|los|las|y|en|del|lo|por|tus|es|una|que|como|al|se|tu|le|su|sus|para|con|"
        r"esta|este|pero|mas)\b"
    ),
    "pt": re.compile(
        r"\b(?:o|os|e|em|do|da|dos|das|nao|voce|uma|ao|seu|sua|seus|suas|para|com|isso|esta|"
        r"este|mas|mais|meu|minha)\b"
    ),
}
_PT_CHARS = re.compile(r"[ãõç]", re.IGNORECASE)
_ES_CHARS = re.compile(r"[ñ¿¡]", re.IGNORECASE)


def guess_language(norm: Normalized) -> str:
    """A cheap stopword vote between en, es and pt (ties go to English)."""
    head = norm.text[:5000]
    counts = {lang: len(words.findall(head)) for lang, words in _STOPWORDS.items()}
    original = norm.original[:5000]
    counts["pt"] += 2 * len(_PT_CHARS.findall(original))
    counts["es"] += 2 * len(_ES_CHARS.findall(original))
    best = max(counts, key=lambda k: (counts[k], k == "en"))
    return best if counts[best] > 0 else "en"


def combine(rule_score: float, classifier_score: float) -> float:
    return float(max(rule_score, classifier_score))


def combined_score(
    norm: Normalized,
    model: classifier.InjectionModel | None,
    max_chars: int = classifier.MAX_CHARS,
    use_semantic: bool = True,
) -> tuple[float, float, list[rules.Hit]]:
    """(combined score, classifier probability, rule hits) for one normalised text."""
    hits = rules.match(norm)
    if model is None:
        return rules.score(hits), 0.0, hits
    prob = model.probability(norm, max_chars, use_semantic)
    return combine(rules.score(hits), model.calibrate(prob)), prob, hits


class InjectionGuard:
    """Options: ``threshold`` (float in [0, 1]; default 0.5, see the module docstring),
    ``classifier`` (bool, default true; false runs the rules alone), ``semantic`` (bool,
    default true; false drops the embedding half of the classifier, for the lowest latency
    at some recall), ``model`` (path to another model file) and ``max_classify_chars``
    (default 100,000)."""

    deterministic = True  # the same text, the same result: results may be remembered
    name = "prompt_injection"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        opts = dict(options or {})
        unknown = set(opts) - _OPTIONS
        if unknown:
            raise ValueError(f"prompt_injection: unknown options {sorted(unknown)}")
        threshold = opts.get("threshold")
        if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
            raise ValueError("prompt_injection: threshold must be between 0 and 1")
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self._use_classifier = bool(opts.get("classifier", True))
        self._use_semantic = bool(opts.get("semantic", True))
        self._model_path = opts.get("model")
        self._max_chars = int(opts.get("max_classify_chars", classifier.MAX_CHARS))
        self._model: tuple[int, classifier.InjectionModel] | None = None

    def model(self) -> classifier.InjectionModel | None:
        if not self._use_classifier:
            return None
        # Kept between checks (resolving the file's path costs file-system calls), until
        # this process trains a new model.
        if self._model is None or self._model[0] != classifier.generation:
            path = Path(self._model_path) if self._model_path else None
            self._model = (classifier.generation, classifier.load(path))
        return self._model[1]

    def warm(self) -> None:
        """Load the model and everything a check may need (scikit-learn's hash, the
        sentence encoder of the semantic half), so that no request pays for it."""
        model = self.model()
        if model is not None:
            model.probabilities(["warm up"])
            if model.emb_coef is not None and self._use_semantic:
                semantic.embed(["warm up"])
        self.check("Warm up: hola, olá, hello.")

    def check(self, text: str) -> GuardResult:
        started = time.perf_counter()
        norm = normalize(text)
        model = self.model()
        score, prob, hits = combined_score(norm, model, self._max_chars, self._use_semantic)
        threshold = self.threshold
        flagged = score >= threshold
        lang = guess_language(norm)
        spans = [_span(text, h, lang) for h in hits]
        rule_score = rules.score(hits)
        clf_score = model.calibrate(prob) if model is not None else 0.0
        if flagged and rule_score < threshold:
            spans.append(
                Span(
                    "classifier", 0, len(text), text, {"probability": round(prob, 4), "lang": lang}
                )
            )
        return GuardResult(
            guard=self.name,
            flagged=flagged,
            score=score,
            spans=spans,
            latency_ms=(time.perf_counter() - started) * 1000,
            reason=_reason(hits, clf_score, prob, lang, threshold) if flagged else None,
        )


def _span(text: str, hit: rules.Hit, lang: str) -> Span:
    detail: dict[str, Any] = {
        "rule": hit.rule.id,
        "lang": hit.rule.lang if hit.rule.lang != "any" else lang,
        "weight": round(hit.weight, 3),
    }
    if hit.source in ("base64", "hex"):
        detail["encoding"] = hit.source
    elif hit.source.startswith("leet"):
        detail["obfuscation"] = "leetspeak"
    elif hit.source in ("reversed", "rot13"):
        detail["obfuscation"] = hit.source
    if hit.mention:
        detail["mention"] = True
    return Span(hit.rule.category, hit.start, hit.end, text[hit.start : hit.end], detail)


def _reason(
    hits: list[rules.Hit], clf_score: float, prob: float, lang: str, threshold: float
) -> str:
    strongest: dict[str, rules.Hit] = {}
    for h in hits:
        if h.rule.category not in strongest or h.weight > strongest[h.rule.category].weight:
            strongest[h.rule.category] = h
    parts = []
    for h in sorted(strongest.values(), key=lambda h: -h.weight)[:2]:
        if h.mention:
            continue
        where = LANG_NAMES.get(h.rule.lang if h.rule.lang != "any" else lang, lang)
        encoded = f" (inside {h.source})" if h.source in ("base64", "hex") else ""
        parts.append(f"{h.rule.category.replace('_', ' ')} in {where}{encoded}")
    if clf_score >= threshold and (not parts or clf_score > max(h.weight for h in hits)):
        parts.append(f"classifier ({LANG_NAMES.get(lang, lang)}, p={prob:.2f})")
    return "; ".join(parts) if parts else f"prompt injection in {LANG_NAMES.get(lang, lang)}"
