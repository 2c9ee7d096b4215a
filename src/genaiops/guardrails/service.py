"""GuardrailsService: runs the guards a policy names over a text and decides what happens.

Each guard reports (flagged, score, spans); the policy of the stage (input, context,
output) maps every flagged guard to an action, and the strongest action wins:
``block`` > ``redact`` > ``flag`` > ``log``. ``redact`` replaces the flagged spans —
PII with numbered placeholders (``<CPF_1>``), keyed hashes, or reversible placeholders
kept in a per-request vault (guardrails/pii/redaction.py does the numbering, hashing and
restoring for every guard's spans) — and the request goes on
with the redacted text. Guards are built once, lazily, by name from a registry that
plugins extend (entry-point group ``genaiops.guards``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

from genaiops.config import GuardPolicy, GuardrailsSettings
from genaiops.errors import ConfigError, InvalidRequest
from genaiops.guardrails.base import Guard, GuardResult
from genaiops.guardrails.pii import redaction

if TYPE_CHECKING:
    from genaiops.guardrails.policies import PolicyStore
    from genaiops.security.principal import Principal

Stage = Literal["input", "context", "output"]
_ORDER = {"log": 1, "flag": 2, "redact": 3, "block": 4}

_REGISTRY: dict[str, Callable[[dict[str, Any]], Guard] | str] = {
    "pii": "genaiops.guardrails.pii.guard:PIIGuard",
    "prompt_injection": "genaiops.guardrails.injection.guard:InjectionGuard",
    "toxicity": "genaiops.guardrails.toxicity:ToxicityGuard",
    "banned_terms": "genaiops.guardrails.topics:BannedTermsGuard",
}


def register_guard(name: str, factory: Callable[[dict[str, Any]], Guard] | str) -> None:
    _REGISTRY[name] = factory


def _factory(name: str) -> Callable[[dict[str, Any]], Guard]:
    if name not in _REGISTRY:
        for ep in entry_points(group="genaiops.guards"):
            _REGISTRY.setdefault(ep.name, ep.value)
    found: Any = _REGISTRY.get(name)
    if found is None:
        raise InvalidRequest(
            f"unknown guard {name!r}; available: {', '.join(sorted(_REGISTRY))}",
            param="guards",
            code="guard_not_found",
        )
    if isinstance(found, str):
        module, _, attr = found.partition(":")
        found = getattr(import_module(module), attr)
        _REGISTRY[name] = found
    factory: Callable[[dict[str, Any]], Guard] = found
    return factory


def known_guards() -> list[str]:
    return sorted(_REGISTRY)


@dataclass
class Outcome:
    """The verdict on one text at one stage."""

    flagged: bool
    action: str | None  # the strongest action among flagged guards; None when clean
    results: list[GuardResult]
    text: str  # the text to go on with (redacted when the action is redact)
    # Placeholder -> original value, for restoring reversible PII in the answer.
    vault: dict[str, str] = field(default_factory=dict)
    # Per flagged guard: the action its policy gave it.
    actions: dict[str, str] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def reasons(self) -> str:
        return "; ".join(f"{r.guard}: {r.reason or 'flagged'}" for r in self.results if r.flagged)

    def public(self, reveal: bool = True) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "action": self.action,
            "results": [r.public(reveal) for r in self.results],
            "redacted": self.text if self.action == "redact" else None,
        }


class GuardrailsService:
    def __init__(self, settings: GuardrailsSettings, store: PolicyStore | None = None):
        self.settings = settings
        # Overrides per tenant, key and model (guardrails/policies.py); None: config only.
        self.store = store
        self._guards: dict[tuple[str, str], Guard] = {}
        self._lock = threading.Lock()
        key = os.environ.get(settings.pii_hash_key_env)
        self._hash_key = key.encode() if key else os.urandom(32)

    def guard(self, name: str, options: dict[str, Any] | None = None) -> Guard:
        options = options or {}
        cache_key = (name, repr(sorted(options.items())))
        with self._lock:
            guard = self._guards.get(cache_key)
            if guard is None:
                try:
                    guard = _factory(name)(options)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"guard {name!r}: invalid options: {exc}") from exc
                self._guards[cache_key] = guard
            return guard

    def policies(
        self, stage: Stage, principal: Principal | None = None, model: str | None = None
    ) -> dict[str, GuardPolicy]:
        """The effective policy of a stage for a caller and a model."""
        if self.store is not None:
            return self.store.resolve(stage, principal, model)
        policy: dict[str, GuardPolicy] = getattr(self.settings, stage)
        return {name: p for name, p in policy.items() if p.enabled}

    def check(
        self,
        text: str,
        *,
        stage: Stage = "input",
        guards: list[str] | None = None,
        policies: dict[str, GuardPolicy] | None = None,
        context: str = "",
    ) -> Outcome:
        """Run ``guards`` (default: the stage's policy) over ``text``.

        ``context`` is text just before ``text`` that was checked already (the released
        part of a streamed answer): guards read it, so a keyword there still vouches for
        a number here, but spans are reported in ``text`` only (cut where one starts in
        the context) and only ``text`` is returned and redacted.
        """
        chosen = policies if policies is not None else self.policies(stage)
        if guards is not None:
            chosen = {name: chosen.get(name) or GuardPolicy(action="flag") for name in guards}
        sample = self._sample(text)
        results: list[GuardResult] = []
        actions: dict[str, str] = {}
        for name, policy in chosen.items():
            guard = self.guard(name, policy.options)
            started = time.perf_counter()
            result = _run(guard, sample, context)
            result.latency_ms = (time.perf_counter() - started) * 1000
            if policy.threshold is not None:
                result.flagged = result.score >= policy.threshold and result.score > 0
            results.append(result)
            if result.flagged:
                actions[name] = policy.action
        action = max(actions.values(), key=lambda a: _ORDER[a]) if actions else None
        outcome = Outcome(bool(actions), action, results, text, actions=actions)
        if action == "redact":
            if sample is not text:
                # Offsets must index the whole text: rerun the redacting guards on it.
                results = [
                    _run(self.guard(r.guard, chosen[r.guard].options), text, context)
                    if actions.get(r.guard) == "redact"
                    else r
                    for r in results
                ]
            outcome.text, outcome.vault = self._redact(text, results, actions)
        return outcome

    def _sample(self, text: str) -> str:
        limit = self.settings.max_check_chars
        if len(text) <= limit:
            return text
        # Very long inputs: the start and the end are where instructions hide.
        half = limit // 2
        return text[:half] + "\n" + text[-half:]

    def _redact(
        self, text: str, results: list[GuardResult], actions: dict[str, str]
    ) -> tuple[str, dict[str, str]]:
        # Earlier, then longer spans first: where spans overlap, the first one wins.
        spans = sorted(
            (
                replace(span, kind=span.kind.upper())
                for result in results
                if actions.get(result.guard) == "redact"
                for span in result.spans
            ),
            key=lambda s: (s.start, -(s.end - s.start)),
        )
        if self.settings.pii_mode == "hash":
            return redaction.hash_spans(text, spans, self._hash_key), {}
        vault = redaction.Vault()
        masked = vault.mask_spans(text, spans)
        # Only the reversible mode keeps the originals, to restore them in the answer.
        return masked, vault.placeholders if self.settings.pii_mode == "reversible" else {}


def _run(guard: Guard, text: str, context: str) -> GuardResult:
    """``guard`` on ``text`` read after ``context``, with offsets into ``text`` alone."""
    if not context:
        return guard.check(text)
    result = guard.check(context + text)
    if not result.spans:
        return result
    offset = len(context)
    spans = [
        replace(
            s, start=max(s.start - offset, 0), end=s.end - offset, text=s.text[-(s.end - offset) :]
        )
        for s in result.spans
        if s.end > offset
    ]
    if not spans:
        return replace(result, flagged=False, score=0.0, spans=[], reason=None)
    return replace(result, spans=spans)


def restore(text: str, vault: dict[str, str]) -> str:
    """Put reversible placeholders back (unknown ones stay as they are)."""
    return redaction.restore(text, vault)
