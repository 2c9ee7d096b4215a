"""The Guard protocol and the values every guard returns.

A guard inspects one text and reports whether it is flagged, a score in [0, 1], and the
spans it found (character offsets into the text it was given). Guards never act: the
policy decides what a flag means (block, redact, flag, log). Guards are registered by name
(entry-point group ``genaiops.guards``) like engines and embedders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Severity = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class Span:
    kind: str  # e.g. "CPF", "EMAIL", "instruction_override", "insult"
    start: int
    end: int
    text: str
    # Guard-specific extras (severity of an insult, the validator that accepted a CPF...).
    detail: dict[str, Any] = field(default_factory=dict)

    def public(self, reveal: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "start": self.start, "end": self.end}
        # PII spans are returned to the caller who sent the text, never logged.
        out["text"] = self.text if reveal else None
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class GuardResult:
    guard: str
    flagged: bool
    score: float
    spans: list[Span] = field(default_factory=list)
    latency_ms: float = 0.0
    # A short reason a person can read ("instruction override in Spanish", "CPF").
    reason: str | None = None

    def public(self, reveal: bool = True) -> dict[str, Any]:
        return {
            "guard": self.guard,
            "flagged": self.flagged,
            "score": round(self.score, 4),
            "reason": self.reason,
            "spans": [s.public(reveal) for s in self.spans],
            "latency_ms": round(self.latency_ms, 3),
        }


class Guard(Protocol):
    """Optional extras a guard may define (read with ``getattr``):

    ``streaming_unit = "word"`` when everything it finds lies inside words (PII values),
    so a streamed answer can be checked a word at a time rather than a sentence at a time;
    ``may_flag(text) -> bool``, a cheap test that is False when ``check`` could not flag
    ``text``, so the check can be skipped; ``deterministic = True`` when the same text
    always gets the same result (no clock, no network, no randomness), so results may be
    remembered (see ``GuardrailsService``).
    """

    name: str

    def check(self, text: str) -> GuardResult: ...


GuardFactory = Callable[[dict[str, Any]], Guard]
