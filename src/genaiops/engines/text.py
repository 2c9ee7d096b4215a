"""Streaming text helpers shared by engines: stop-sequence matching that never emits
text which might turn out to be the start of a stop sequence."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    def __init__(self, stops: Sequence[str]):
        self._stops = [s for s in stops if s]
        self._buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add generated text; return (text safe to emit, whether a stop sequence matched)."""
        if not self._stops:
            return text, False
        self._buffer += text
        hits = [i for i in (self._buffer.find(s) for s in self._stops) if i >= 0]
        if hits:
            out = self._buffer[: min(hits)]
            self._buffer = ""
            return out, True
        hold = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(self._buffer)), hold, -1):
                if self._buffer.endswith(stop[:k]):
                    hold = k
                    break
        cut = len(self._buffer) - hold
        out, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return out, False

    def flush(self) -> str:
        out, self._buffer = self._buffer, ""
        return out
