"""The guardrail stages of the pipeline: input (the caller's messages or prompt) and
context (retrieved chunks), run by the policy in ``guardrails``.

A block raises ContentBlocked (400, ``content_filter``) with the guards' reasons; a
redaction rewrites the text in place before anything else sees it; a flag or log lets the
request through. One ``Vault`` per request numbers every redaction of it (all messages,
retrieved chunks, the answer), so a placeholder names one value in the whole request.

Every message is checked, whatever its role, with one exception: system and developer
messages skip the prompt-injection guard. They are the application's instructions to the
model, which that guard would read as attempts to instruct it; personal data, toxic
content or banned terms in them reach the model all the same, so PII, toxicity and every
other input guard read them like any user message.

Every finding a policy acted on is noted on the RequestContext, from which the record
stage counts it in Prometheus and writes it to the audit log — the guard, the action and
the kinds found, never the text.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from genaiops.engines.base import ChatMessage, GenerationRequest, ToolCalls
from genaiops.errors import ContentBlocked
from genaiops.guardrails.pii.redaction import Vault

if TYPE_CHECKING:
    from genaiops.config import GuardPolicy
    from genaiops.gateway.context import RequestContext
    from genaiops.guardrails.service import GuardrailsService, Outcome
    from genaiops.security.principal import Principal

# Texts longer than this are checked off the event loop.
_INLINE_CHARS = 8_000
# Roles whose messages are instructions written by the application: the guards that judge
# whether a text tries to instruct the model do not read them.
_INSTRUCTION_ROLES = frozenset({"system", "developer"})
_INSTRUCTION_EXEMPT = frozenset({"prompt_injection"})


async def _check(
    guardrails: GuardrailsService,
    text: str,
    stage: str,
    policies: dict[str, GuardPolicy],
    vault: Vault,
) -> Outcome:
    if len(text) > _INLINE_CHARS:
        return await asyncio.to_thread(
            guardrails.check,
            text,
            stage=stage,  # type: ignore[arg-type]
            policies=policies,
            vault=vault,
        )
    return guardrails.check(text, stage=stage, policies=policies, vault=vault)  # type: ignore[arg-type]


def _redacted(message: ChatMessage, text: str) -> ChatMessage:
    """``message`` with its text redacted; in a message of mixed parts the redacted text
    takes the place of its first text part (the other text parts were joined into it)."""
    parts = message.parts
    if parts is not None:
        first = next((i for i, p in enumerate(parts) if p.get("type") == "text"), None)
        if first is not None:
            kept = [p for i, p in enumerate(parts) if p.get("type") != "text" or i == first]
            position = sum(1 for p in parts[:first] if p.get("type") != "text")
            kept[position] = {"type": "text", "text": text}
            parts = tuple(kept)
    return replace(message, content=text, parts=parts)


def _principal(ctx: RequestContext | None) -> Principal | None:
    return ctx.principal if ctx is not None else None


def taken(outcome: Outcome, guard: str) -> str | None:
    """The action a guard's finding actually led to: in a check that blocked, the other
    guards' redactions never happened, so they are recorded as flags (found, noted)."""
    action = outcome.actions.get(guard)
    if action is not None and outcome.blocked and action != "block":
        return "flag"
    return action


def note(ctx: RequestContext | None, outcome: Outcome, stage: str) -> None:
    if ctx is None:
        return
    for result in outcome.results:
        action = taken(outcome, result.guard)
        if action is not None:
            kinds = sorted({span.kind for span in result.spans})
            ctx.guardrail_events.append(
                {"stage": stage, "guard": result.guard, "action": action, "kinds": kinds}
            )


async def guard_input(
    guardrails: GuardrailsService,
    request: GenerationRequest,
    ctx: RequestContext | None,
    vault: Vault | None = None,
) -> Vault:
    """Check the caller's text, redacting in place; returns the request's vault (the
    caller's reversible PII placeholders, and the numbering later stages go on with)."""
    vault = Vault() if vault is None else vault
    blocked: list[str] = []
    model = ctx.model if ctx is not None else request.model
    policies = guardrails.policies("input", _principal(ctx), model)
    if not policies:
        return vault
    if request.messages is not None:
        for message in request.messages:
            vault.reserve(message.content)
            for function in _functions(message.extra):
                vault.reserve(_arguments(function) or "")
        instruction_policies = {
            name: p for name, p in policies.items() if name not in _INSTRUCTION_EXEMPT
        }
        for i, message in enumerate(request.messages):
            chosen = instruction_policies if message.role in _INSTRUCTION_ROLES else policies
            if not chosen:
                continue
            if message.content:
                outcome = await _check(guardrails, message.content, "input", chosen, vault)
                note(ctx, outcome, "input")
                if outcome.blocked:
                    blocked.append(outcome.reasons())
                elif outcome.action == "redact":
                    message = request.messages[i] = _redacted(message, outcome.text)
            extra = await _guard_calls(guardrails, message.extra, chosen, vault, ctx, blocked)
            if extra is not message.extra:
                request.messages[i] = replace(message, extra=extra)
    elif request.prompt:
        vault.reserve(request.prompt)
        outcome = await _check(guardrails, request.prompt, "input", policies, vault)
        note(ctx, outcome, "input")
        if outcome.blocked:
            blocked.append(outcome.reasons())
        elif outcome.action == "redact":
            request.prompt = outcome.text
    if blocked:
        raise ContentBlocked(
            "The request was blocked by the guardrails policy: " + "; ".join(blocked),
            param="messages" if request.messages is not None else "prompt",
        )
    return vault


def _functions(extra: dict[str, Any]) -> list[Any]:
    """The ``function`` objects of a message's tool calls, one per call (None where a call
    is malformed), then its older single ``function_call`` (None when absent)."""
    calls = extra.get("tool_calls")
    calls = calls if isinstance(calls, list) else []
    functions = [c.get("function") if isinstance(c, dict) else None for c in calls]
    return [*functions, extra.get("function_call")]


def _arguments(function: Any) -> str | None:
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        return str(function["arguments"])
    return None


async def _guard_calls(
    guardrails: GuardrailsService,
    extra: dict[str, Any],
    policies: dict[str, GuardPolicy],
    vault: Vault,
    ctx: RequestContext | None,
    blocked: list[str],
) -> dict[str, Any]:
    """The input policy on the arguments of the tool calls an earlier assistant turn made
    (``tool_calls``, or the older ``function_call``), which a remote upstream reads like
    any other text: a client sending back an answer the gateway de-anonymised for it must
    not hand the caller's values to the model. Returns ``extra`` itself when nothing
    changed, else a copy with the redacted arguments (placeholders hold no quote or
    backslash, so the JSON stays valid)."""
    functions = _functions(extra)
    changed: dict[int, dict[str, Any]] = {}
    for n, function in enumerate(functions):
        arguments = _arguments(function)
        if not arguments:
            continue
        outcome = await _check(guardrails, arguments, "input", policies, vault)
        note(ctx, outcome, "input")
        if outcome.blocked:
            blocked.append(outcome.reasons())
        elif outcome.action == "redact":
            changed[n] = function | {"arguments": outcome.text}
    if not changed:
        return extra
    out = dict(extra)
    calls = len(functions) - 1
    if any(n < calls for n in changed):
        out["tool_calls"] = [
            call | {"function": changed[n]} if n in changed else call
            for n, call in enumerate(extra["tool_calls"])
        ]
    if calls in changed:
        out["function_call"] = changed[calls]
    return out


_BOUNDARY = re.compile(r"[.!?…](?=\s)|\n")
# A sentence longer than this is checked and released without waiting for its end.
_MAX_BUFFER = 400
# A finished word: its characters and the whitespace after it.
_WORD = re.compile(r"(\S+)\s+")
_EDGE_PUNCTUATION = ".,;!?¡¿\"'()[]{}«»“”‘’*_—–…"
# Released text the word-level guards may still read for context ("CPF", "cédula" a few
# words before a number), so that checking piece by piece finds what a whole check would.
_LOOKBEHIND = 96


_IBAN_START = re.compile(r"[A-Za-z]{2}[0-9]{2}")


def _plain_word(word: str) -> bool:
    """A word that can be no part of any PII value: letters only, and not a short block of
    capitals (IBAN groups, the initials of an RFC written with spaces)."""
    core = word.strip(_EDGE_PUNCTUATION)
    return core.isalpha() and not (len(core) <= 4 and core.isupper())


# An IBAN written in groups: its country and check digits, then groups of up to four.
_IBAN_GROUP_CHARS = 34


def _last_plain_word_end(text: str, start: int = 0) -> int:
    """Where the last plain word of ``text`` after ``start``, and the whitespace after
    it, end (``start`` when there is none). Two kinds of plain words are not ends either,
    since a value written in groups may go on after them: a group of an IBAN ("gb82 west
    1234 ..."), and a word of three or four letters before digits or before nothing yet
    (an RFC's initials: "gode 561231 gr8")."""
    end = start
    words = list(_WORD.finditer(text, start))
    iban = 0  # characters of the IBAN being written in groups; 0 outside one
    for i, match in enumerate(words):
        core = match.group(1).strip(_EDGE_PUNCTUATION)
        if _IBAN_START.fullmatch(core):
            iban = len(core)
            continue
        if iban and core.isalnum() and len(core) <= 4 and iban + len(core) <= _IBAN_GROUP_CHARS:
            iban += len(core)
            continue
        iban = 0
        if not _plain_word(match.group(1)):
            continue
        if 3 <= len(core) <= 4:
            # The next word, finished or still arriving, decides.
            following = words[i + 1].group(1) if i + 1 < len(words) else text[match.end() :]
            following = following.lstrip(_EDGE_PUNCTUATION)
            if not following or following[0].isdigit():
                continue
        end = match.end()
    return end


# Characters no PII value contains (values hold digits, letters, dots, dashes, spaces,
# "+", "@", ":" and parentheses): a piece may end after one without cutting a value.
_SEPARATORS = frozenset('",;{}[]|=')


def _last_separator_end(text: str) -> int:
    """Just after the last separator of ``text`` (0 when there is none)."""
    return max((i + 1 for i, char in enumerate(text) if char in _SEPARATORS), default=0)


# Words so common that they go out before the token after them arrives (a word is
# otherwise held until it is finished, since "john" may go on as "john@acme.com"): an
# answer that opens with one of them starts a token sooner. At worst such a word is the
# local part of a role address ("hola@…"), which names no one.
_EARLY_TEXT = (
    "i a an the it is are was in on of to and or but for with as at by this that there here"
    " sure yes no hello hi once okay ok certainly absolutely great thanks thank well so"
    " el la los las un una uno de del en y o que es son por para con hola claro si sí no"
    " gracias aquí aqui esto este esta había habia érase erase"
    " os as um umas uns do da dos das em no na nos nas e ou é são sim não olá ola obrigado"
    " obrigada isso era"
)
EARLY_WORDS = frozenset(_EARLY_TEXT.split())


def _early(rest: str) -> bool:
    """Whether the held ``rest`` is only whitespace and one of the ``EARLY_WORDS`` words."""
    word = rest.lstrip()
    return (
        bool(word)
        and word.isalpha()
        and word.lower() in EARLY_WORDS
        and not (word.isupper() and len(word) > 1)  # "DE", "EL": an RFC or a CURP begins so
    )


class OutputFilter:
    """Output guards on a generated answer, streamed or not, as it is produced.

    Text is held back only as long as the guards need to judge it; placeholders of the
    caller's own reversible PII are put back, and the restored text is checked with the
    output policy: redactions are applied (numbered in the request's vault, never
    restorable: a value the model produced that the caller did not send stays masked,
    while the caller's own values are theirs to see), and a block stops the answer
    (ContentBlocked). A placeholder is never cut in half between two released pieces.

    How long text is held depends on the guards. Guards that judge a whole sentence
    (toxicity, banned terms) get text a sentence at a time. When every active guard finds
    values inside words (``streaming_unit = "word"`` on the guard: PII), text is released
    a word at a time: everything up to the last finished plain word (see ``_plain_word``)
    is safe, since no value can span it, and only a trailing run of digits, codes or
    addresses waits for the word that closes it. Every guard reads the last
    ``_LOOKBEHIND`` released characters as context (a keyword such as "C.C." ending the
    previous sentence vouches for the number that opens this one), and a piece every
    guard rules out at a glance (``may_flag``: no digit, ``@`` or ``:`` for PII) is not
    checked at all. A streamed answer therefore starts as soon as its first word is
    finished, not its first sentence, and at once when that word is a very common one
    (``EARLY_WORDS``: "The", "Hola", "Olá"...).
    """

    def __init__(
        self,
        guardrails: GuardrailsService | None,
        vault: Vault | None,
        ctx: RequestContext | None,
    ):
        self.guardrails = guardrails
        self.vault = Vault() if vault is None else vault
        self.ctx = ctx
        # One event per guard and action for the whole answer, however many pieces.
        self._events: dict[tuple[str, str], dict[str, Any]] = {}
        self._buffer = ""
        self._released = ""
        # Raw text released so far, in characters, and each release's end with whether
        # the guards changed it (the answer's logprobs follow only unchanged text).
        self._raw_out = 0
        self.releases: list[tuple[int, bool]] = []
        self._policies = (
            guardrails.policies("output", _principal(ctx), ctx.model if ctx else None)
            if guardrails is not None
            else {}
        )
        self._active = bool(vault) or bool(self._policies)
        guards = (
            [guardrails.guard(name, p.options) for name, p in self._policies.items()]
            if guardrails is not None
            else []
        )
        self._by_word = all(getattr(g, "streaming_unit", "sentence") == "word" for g in guards)
        self._quick = [getattr(g, "may_flag", None) for g in guards] if self._by_word else []

    @property
    def active(self) -> bool:
        return self._active

    def feed(self, text: str) -> str:
        if not self._active:
            return text
        self._buffer += text
        cut = 0
        for match in _BOUNDARY.finditer(self._buffer):
            cut = match.end()
        if self._by_word:
            cut = _last_plain_word_end(self._buffer, cut)
            if _early(self._buffer[cut:]):
                cut = len(self._buffer)
        if cut == 0 and len(self._buffer) > _MAX_BUFFER:
            # No sentence end in sight: release up to the last plain word, or else up to
            # the last character no value contains (the quotes and commas of minified
            # JSON), so no value is cut in half; only a text with neither goes out whole.
            cut = _last_plain_word_end(self._buffer) or _last_separator_end(self._buffer)
            cut = cut or len(self._buffer)
        if cut == 0:
            return ""
        # Keep a possibly unfinished placeholder ("<CPF_" ...) for the next piece.
        opening = self._buffer.rfind("<", 0, cut)
        if opening != -1 and ">" not in self._buffer[opening:cut] and cut - opening < 32:
            cut = opening
        ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
        released = self._release(ready)
        return released

    def flush(self) -> str:
        ready, self._buffer = self._buffer, ""
        return self._release(ready) if self._active and ready else ready

    def _release(self, text: str) -> str:
        if not text:
            return text
        raw = text
        # Restore first: what the output guards then mask is never mistaken for a
        # placeholder of the caller's (their own values are exempt in ``check``).
        text = self.vault.restore(text)
        if self.guardrails is not None and self._policies and self._needs_check(text):
            # The guards read the text just released as context: a keyword there ("C.C.",
            # "CPF" ending the previous sentence or piece) still vouches for a number
            # here, and a threat or a banned phrase across a forced cut is found whole.
            context = self._released
            outcome = self.guardrails.check(
                text, stage="output", policies=self._policies, context=context, vault=self.vault
            )
            self._note(outcome)
            if outcome.blocked:
                raise ContentBlocked(
                    "The answer was stopped by the guardrails policy: " + outcome.reasons()
                )
            if outcome.action == "redact":
                text = outcome.text
        self._released = (self._released + text)[-_LOOKBEHIND:]
        self._raw_out += len(raw)
        self.releases.append((self._raw_out, text == raw))
        return text

    def tool_calls(self, event: ToolCalls) -> ToolCalls:
        """The output policy on each call's arguments (they arrive whole): the caller's
        reversible values are put back, a block stops the answer, a redaction masks the
        value inside the JSON text (placeholders hold no quote or backslash)."""
        if not self._active:
            return event
        calls = []
        for call in event.calls:
            function: Any = call.get("function")
            arguments = _arguments(function)
            if arguments is None:
                calls.append(call)
                continue
            checked = self.vault.restore(arguments)
            if self.guardrails is not None and self._policies:
                outcome = self.guardrails.check(
                    checked, stage="output", policies=self._policies, vault=self.vault
                )
                self._note(outcome)
                if outcome.blocked:
                    raise ContentBlocked(
                        "The answer's tool call was stopped by the guardrails policy: "
                        + outcome.reasons()
                    )
                if outcome.action == "redact":
                    checked = outcome.text
            calls.append(call | {"function": function | {"arguments": checked}})
        return ToolCalls(tuple(calls))

    def _note(self, outcome: Outcome) -> None:
        """Like ``note``, merged into the answer's event for the same guard and action."""
        if self.ctx is None:
            return
        for result in outcome.results:
            action = taken(outcome, result.guard)
            if action is None:
                continue
            kinds = {span.kind for span in result.spans}
            event = self._events.get((result.guard, action))
            if event is None:
                event = {"stage": "output", "guard": result.guard, "action": action, "kinds": []}
                self._events[(result.guard, action)] = event
                self.ctx.guardrail_events.append(event)
            event["kinds"] = sorted(kinds.union(event["kinds"]))

    def _needs_check(self, text: str) -> bool:
        return not self._by_word or any(may is None or may(text) for may in self._quick)
