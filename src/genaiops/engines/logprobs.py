"""Log probabilities of generated tokens (OpenAI's ``logprobs``) and their alignment with
the text that goes out.

A local model's log probability for a token is read from the logits it was sampled from:
the model's own distribution (a log-softmax of the raw logits), before temperature, top-p
or a grammar narrow it, which is what OpenAI reports too. Alternatives are the ``top``
most likely tokens of that distribution, most likely first.

Text does not leave in the same pieces as tokens: a stop sequence holds back text that
may begin one, and output guards hold text until they can judge it and may rewrite it
(a redacted value, a restored placeholder). ``Aligner`` keeps each token's entry until
the text it produced is released, by character offsets in the model's raw text. Entries
of text that went out unchanged travel with it; entries of text a guard rewrote (or a
stop sequence swallowed) are dropped, so a redacted value never leaks through its
tokens.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

# OpenAI's bounds: ``top_logprobs`` up to 20 for chat, ``logprobs`` up to 5 for completions.
MAX_TOP_CHAT = 20
MAX_TOP_COMPLETION = 5


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    raw: bytes  # the token's bytes (a character may span tokens)
    # The most likely tokens at this position: (token, logprob, bytes), best first.
    top: tuple[tuple[str, float, bytes], ...] = ()
    # What the token added to the answer's text, as the engine decoded it ("" for the
    # first bytes of a character split across tokens): its width in the raw text.
    text: str = ""

    def chat(self) -> dict[str, Any]:
        """The entry of a chat answer's ``logprobs.content``."""
        return {
            "token": self.token,
            "logprob": self.logprob,
            "bytes": list(self.raw),
            "top_logprobs": [
                {"token": t, "logprob": lp, "bytes": list(b)} for t, lp, b in self.top
            ],
        }


def from_logits(
    logits: npt.NDArray[np.float32],
    token: int,
    top: int,
    piece: Callable[[int], bytes],
    text: str,
) -> TokenLogprob:
    """The entry of ``token`` sampled from ``logits`` (one row, the vocabulary wide)."""
    # float32 like the logits (a 262k vocabulary's row in float64 takes twice as long);
    # the sum in float64.
    row = logits - logits.max()
    norm = float(np.log(np.exp(row).sum(dtype=np.float64)))
    alternatives: tuple[tuple[str, float, bytes], ...] = ()
    if top > 0:
        k = min(top, len(row))
        best = np.sort(np.argpartition(row, -k)[-k:])  # ties in vocabulary order
        best = best[np.argsort(-row[best], kind="stable")]
        alternatives = tuple(
            (_text(piece(int(i))), float(row[i]) - norm, piece(int(i))) for i in best
        )
    raw = piece(token)
    return TokenLogprob(_text(raw), float(row[token]) - norm, raw, alternatives, text)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class Aligner:
    """Token entries waiting for their text to be released (see the module docstring)."""

    def __init__(self) -> None:
        self._pending: deque[tuple[int, int, TokenLogprob]] = deque()
        self._end = 0  # raw characters the entries added so far cover

    def add(self, entries: Iterable[TokenLogprob]) -> None:
        for entry in entries:
            start, self._end = self._end, self._end + len(entry.text)
            self._pending.append((start, self._end, entry))

    def release(self, upto: int, unchanged: bool = True) -> tuple[TokenLogprob, ...]:
        """Raw text up to offset ``upto`` has gone out: the entries it holds whole, or
        none when it went out rewritten (then entries reaching into it are dropped too)."""
        out: list[TokenLogprob] = []
        pending = self._pending
        while pending and (pending[0][1] <= upto or (not unchanged and pending[0][0] < upto)):
            entry = pending.popleft()[2]
            if unchanged:
                out.append(entry)
        return tuple(out)

    def drop(self) -> None:
        self._pending.clear()


def from_wire(logprobs: Any, text: str) -> tuple[TokenLogprob, ...]:
    """The entries an OpenAI-compatible upstream reported for ``text`` (a whole answer or
    one chunk's): chat's ``content`` list or completions' parallel lists. What does not
    parse is left out (a relay never fails an answer over its log probabilities). The
    entries' widths are fitted to ``text``, so alignment downstream stays exact."""
    if not isinstance(logprobs, dict):
        return ()
    entries: list[TokenLogprob] = []
    try:
        if isinstance(logprobs.get("content"), list):
            for item in logprobs["content"]:
                top = tuple(
                    (str(t["token"]), float(t["logprob"]), _wire_bytes(t))
                    for t in item.get("top_logprobs") or ()
                )
                entries.append(
                    TokenLogprob(str(item["token"]), float(item["logprob"]), _wire_bytes(item), top)
                )
        elif isinstance(logprobs.get("tokens"), list):
            tops = logprobs.get("top_logprobs") or [None] * len(logprobs["tokens"])
            for token, logprob, alts in zip(
                logprobs["tokens"], logprobs["token_logprobs"], tops, strict=True
            ):
                top = tuple((str(t), float(lp), str(t).encode()) for t, lp in (alts or {}).items())
                entries.append(TokenLogprob(str(token), float(logprob), str(token).encode(), top))
    except (KeyError, TypeError, ValueError, AttributeError):
        return ()
    return _fit(entries, text)


def _wire_bytes(item: dict[str, Any]) -> bytes:
    raw = item.get("bytes")
    return bytes(raw) if isinstance(raw, list) else str(item["token"]).encode()


def _fit(entries: list[TokenLogprob], text: str) -> tuple[TokenLogprob, ...]:
    """Each entry's width in ``text``: its token's, when the tokens spell the text out;
    else the whole text is the last entry's."""
    if "".join(e.token for e in entries) == text:
        return tuple(replace(e, text=e.token) for e in entries)
    return tuple(
        replace(e, text=text if i == len(entries) - 1 else "") for i, e in enumerate(entries)
    )
