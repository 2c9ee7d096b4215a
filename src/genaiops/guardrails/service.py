"""GuardrailsService: runs the guards a policy names over a text and decides what happens.

Each guard reports (flagged, score, spans); the policy of the stage (input, context,
output) maps every flagged guard to an action, and the strongest action wins:
``block`` > ``redact`` > ``flag`` > ``log``. ``redact`` replaces the flagged spans —
PII with numbered placeholders (``<CPF_1>``), keyed hashes, or reversible placeholders
kept in a per-request vault (guardrails/pii/redaction.py does the numbering, hashing and
restoring for every guard's spans) — and the request goes on
with the redacted text. The gateway passes one vault for every text of a request, so a
placeholder names one value across all of them; only the caller's input values are kept
for restoring, and an output check never reports (or masks) a value the caller sent.
Guards are built once, lazily, by name from a registry that plugins extend (entry-point
group ``genaiops.guards``).

Texts longer than ``max_check_chars`` are judged by their first and last parts only
(where instructions hide), except by guards with ``finds_values = True`` (PII): they are
cheap and a value anywhere must be found, so they always read the whole text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
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

log = logging.getLogger("genaiops.guardrails")
# Guard results remembered (``GuardrailsService._run``): how many, and with at most how
# many findings each (what bounds the memory: the texts themselves are never kept). A
# document pasted into the first message of a chat comes back with every later turn, so
# texts of any length are remembered; a text full of findings is simply checked again.
_MEMO_ENTRIES = 4096
_MEMO_MAX_SPANS = 64
# Guards built for distinct options (policies set through the admin API) kept at once.
_MAX_BUILT_GUARDS = 256

Stage = Literal["input", "context", "output"]
_ORDER = {"log": 1, "flag": 2, "redact": 3, "block": 4}
# PII modes, most protective first.
_MODES = ("hash", "mask", "reversible")

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
    def __init__(
        self,
        settings: GuardrailsSettings,
        store: PolicyStore | None = None,
        remember: int = _MEMO_ENTRIES,
    ):
        self.settings = settings
        # Overrides per tenant, key and model (guardrails/policies.py); None: config only.
        self.store = store
        # Built guards by name and options, least recently used first: policies come and
        # go through the admin API, and each options set holds its compiled patterns.
        self._guards: OrderedDict[tuple[str, str], Guard] = OrderedDict()
        self._lock = threading.Lock()
        # Results of deterministic guards by (guard, text digest), most recent last, each
        # with a weak reference to its guard: a guard dropped from ``_guards`` is freed,
        # and a new one (other options) may get its id; its results are not the old one's.
        self._memo: OrderedDict[tuple[int, bytes], tuple[weakref.ref[Guard], GuardResult]] = (
            OrderedDict()
        )
        # How many results to remember (0: none).
        self._remember = remember
        self._memo_lock = threading.Lock()
        key = os.environ.get(settings.pii_hash_key_env)
        self._hash_key = key.encode() if key else os.urandom(32)
        hashing = settings.pii_mode == "hash" or any(
            p.mode == "hash"
            for stage in (settings.input, settings.context, settings.output)
            for p in stage.values()
        )
        if not key and hashing:
            log.warning(
                "%s is not set: PII hashes use a key of this process only and change at "
                "every restart and on every replica",
                settings.pii_hash_key_env,
            )

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
                while len(self._guards) > _MAX_BUILT_GUARDS:
                    self._guards.popitem(last=False)
            else:
                self._guards.move_to_end(cache_key)
            return guard

    def build(self) -> list[Guard]:
        """Build every guard the configured policies name, so a guard unknown or given
        invalid options is a ConfigError at start-up (cheap: models load in ``warm``)."""
        guards = []
        for stage in ("input", "context", "output"):
            policy: dict[str, GuardPolicy] = getattr(self.settings, stage)
            guards += [self.guard(name, p.options) for name, p in policy.items() if p.enabled]
        return guards

    def warm(self) -> None:
        """Load every guard the configured policies name (models, lexicons, imports) and
        run it once, so the first request is as fast as the others; the server calls this
        while its models load."""
        for guard in self.build():
            warm = getattr(guard, "warm", None)
            if callable(warm):
                warm()
            else:
                guard.check("Warm up: hola, olá, hello.")

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
        vault: redaction.Vault | None = None,
    ) -> Outcome:
        """Run ``guards`` (default: the stage's policy) over ``text``.

        ``context`` is text just before ``text`` that was checked already (the released
        part of a streamed answer): guards read it, so a keyword there still vouches for
        a number here, but spans are reported in ``text`` only (cut where one starts in
        the context) and only ``text`` is returned and redacted.

        ``vault`` is the request's (see ``redaction.Vault``): redactions are numbered in
        it, input values are kept for restoring (reversible mode), and on the output
        stage a value the caller sent is theirs to see, so it is neither reported nor
        masked. Without one, a fresh vault numbers this text alone.
        """
        chosen = policies if policies is not None else self.policies(stage)
        if guards is not None:
            chosen = {name: chosen.get(name) or GuardPolicy(action="flag") for name in guards}
        sample = self._sample(text)
        results: list[GuardResult] = []
        actions: dict[str, str] = {}
        sampled: set[str] = set()  # guards that read only the sample
        for name, policy in chosen.items():
            guard = self.guard(name, policy.options)
            whole = sample is text or getattr(guard, "finds_values", False)
            if not whole:
                sampled.add(name)
            started = time.perf_counter()
            result = self._run(guard, text if whole else sample, context)
            result.latency_ms = (time.perf_counter() - started) * 1000
            if policy.threshold is not None:
                result.flagged = result.score >= policy.threshold and result.score > 0
            if stage == "output" and vault is not None and result.spans:
                result = _without_owned(result, vault)
            results.append(result)
            if result.flagged:
                actions[name] = policy.action
        action = max(actions.values(), key=lambda a: _ORDER[a]) if actions else None
        outcome = Outcome(bool(actions), action, results, text, actions=actions)
        if action == "redact":
            # Offsets must index the whole text: rerun the sampled redacting guards on it.
            results = [
                self._run(self.guard(r.guard, chosen[r.guard].options), text, context)
                if actions.get(r.guard) == "redact" and r.guard in sampled
                else r
                for r in results
            ]
            mode = self.redaction_mode(chosen, actions)
            keep = stage == "input" and mode == "reversible"
            outcome.text, outcome.vault = self._redact(text, results, actions, vault, keep, mode)
        return outcome

    def _run(self, guard: Guard, text: str, context: str) -> GuardResult:
        """``_run``, remembering what deterministic guards found in a text: a chat sends
        its whole history with every turn, and an application its system prompt with every
        request, so most of the text a conversation's later requests carry was checked
        before. The result is a copy; the policy (thresholds, actions, redaction with the
        request's own vault) still applies per request."""
        if context or not self._remember or not getattr(guard, "deterministic", False):
            return _run(guard, text, context)
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)
        key = (id(guard), digest.digest())
        with self._memo_lock:
            entry = self._memo.get(key)
            known = entry[1] if entry is not None and entry[0]() is guard else None
            if known is not None:
                self._memo.move_to_end(key)
                spans = [replace(sp, text=text[sp.start : sp.end]) for sp in known.spans]
                return replace(known, spans=spans)
        result = _run(guard, text, context)
        if len(result.spans) > _MEMO_MAX_SPANS:
            return result
        # Kept without the values found (a span's text is cut again from the same text on
        # the next hit), so no personal data outlives its request in memory.
        kept = replace(result, spans=[replace(sp, text="") for sp in result.spans])
        try:
            ref = weakref.ref(guard)
        except TypeError:  # a plugin guard with __slots__ and no __weakref__
            return result
        with self._memo_lock:
            self._memo[key] = (ref, kept)
            while len(self._memo) > self._remember:
                self._memo.popitem(last=False)
        return result

    def redaction_mode(self, chosen: dict[str, GuardPolicy], actions: dict[str, str]) -> str:
        """How a redaction replaces values: the redacting policies' own ``mode``, else the
        installation's ``pii_mode``; where they differ the most protective one wins (hash,
        then mask, then reversible)."""
        modes = {
            chosen[name].mode or self.settings.pii_mode
            for name, action in actions.items()
            if action == "redact" and name in chosen
        }
        return min(modes, key=_MODES.index) if modes else self.settings.pii_mode

    def _sample(self, text: str) -> str:
        limit = self.settings.max_check_chars
        if len(text) <= limit:
            return text
        # Very long inputs: the start and the end are where instructions hide.
        half = limit // 2
        return text[:half] + "\n" + text[-half:]

    def _redact(
        self,
        text: str,
        results: list[GuardResult],
        actions: dict[str, str],
        vault: redaction.Vault | None,
        keep: bool,
        mode: str,
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
        if mode == "hash":
            return redaction.hash_spans(text, spans, self._hash_key), {}
        if vault is None:
            vault = redaction.Vault()
        # Only the reversible mode keeps the caller's originals, to restore them later.
        masked = vault.mask_spans(text, spans, keep=keep)
        return masked, vault.placeholders if mode == "reversible" else {}


def _without_owned(result: GuardResult, vault: redaction.Vault) -> GuardResult:
    """``result`` without the spans that hold the caller's own values."""
    spans = [s for s in result.spans if not vault.owns(s)]
    if len(spans) == len(result.spans):
        return result
    if not spans:
        return replace(result, flagged=False, score=0.0, spans=[], reason=None)
    return replace(result, spans=spans)


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
