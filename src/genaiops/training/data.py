"""Fine-tuning datasets: reading, validating, redacting and tokenising them.

This module owns the three accepted formats and what the loss is computed on:

* chat JSONL, ``{"messages": [{"role": "system"|"user"|"assistant", "content": ...}]}``:
  rendered with the chat template the model is served with (so training and serving see the
  same layout), loss on the assistant turns and their end-of-turn marker only;
* instruction JSONL, ``{"prompt": ..., "completion": ...}``: the prompt as a completion
  request sends it, loss on the completion and the end-of-sequence token;
* plain text (``.txt``, or JSONL with ``{"text": ...}``) for continued pre-training: loss on
  every token, long texts cut into ``max_length`` windows.

Validation happens before any training and reports every problem with its line number
(bad JSON, a record of the wrong shape, empty texts, a conversation with no assistant turn,
a sequence longer than ``max_length``) in one ``DatasetError``. The content hash (sha256 of
the file's bytes) is the dataset's identity for lineage, taken before redaction so the
same file always has the same hash.

Redaction masks PII (``<EMAIL_1>``...) with placeholders numbered per record, so personal
data in training files never reaches the weights; the number of redacted values is
reported. What counts as PII is the guardrails ``pii`` guard's (see ``runner.redactor``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genaiops.engines.base import ChatMessage
from genaiops.engines.chat_template import render
from genaiops.errors import InvalidRequest

IGNORE = -100  # label of a token the loss skips
MAX_ERRORS = 20
ROLES = ("system", "user", "assistant")


def public_file_name(path: str) -> str:
    """How a job's training or validation file is shown: an upload by its file id, a
    local file (CLI jobs) by its name; never where the server keeps it."""
    name = Path(path).name
    return name.split(".", 1)[0] if name.startswith("file-") else name


class DatasetError(InvalidRequest):
    """The dataset cannot be trained on; ``problems`` lists ``(line, message)`` pairs."""

    def __init__(
        self, path: str, problems: Sequence[tuple[int, str]], param: str = "training_file"
    ):
        self.problems = sorted(problems, key=lambda p: p[0])
        shown = "; ".join(f"line {n}: {msg}" if n else msg for n, msg in self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(
            f"{public_file_name(path)}: {len(self.problems)} problem(s): {shown}{more}",
            param=param,
            code=f"invalid_{param}",
        )


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


@dataclass
class Dataset:
    path: str
    format: str  # "chat", "instruction" or "text"
    sha256: str
    examples: list[Example]
    redacted: int = 0
    records: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.examples)


@dataclass
class Renderer:
    """Turns records into token segments for one base model (``of`` builds one from its
    tokenizer)."""

    tokenizer: Any
    chat_template: str | None  # None: the base has none and chat data is refused
    bos_token: str = ""
    eos_token: str = ""
    add_bos: bool = True

    @classmethod
    def of(cls, tokenizer: Any, chat_template: str | None, add_bos: bool = True) -> Renderer:
        """A renderer that gives templates the tokenizer's BOS and EOS strings, as the
        serving engine does (templates in the Llama 2 or Mistral style end turns with
        ``{{ eos_token }}``)."""
        return cls(tokenizer, chat_template, tokenizer.bos_token or "",
                   tokenizer.eos_token or "", add_bos)  # fmt: skip

    def render(self, messages: Sequence[ChatMessage], add_generation_prompt: bool) -> str:
        """The chat template's text for ``messages``, without a leading BOS string (see
        ``writes_bos``)."""
        assert self.chat_template is not None
        text = render(self.chat_template, messages, add_generation_prompt=add_generation_prompt,
                      bos_token=self.bos_token, eos_token=self.eos_token)  # fmt: skip
        return text[len(self.bos_token) :] if self._starts_with_bos(text) else text

    def writes_bos(self, messages: Sequence[ChatMessage]) -> bool:
        """Whether the template starts the text with the BOS string. The engine then adds
        no BOS token of its own (the string is the one BOS), whatever the model says."""
        assert self.chat_template is not None
        text = render(self.chat_template, messages, add_generation_prompt=False,
                      bos_token=self.bos_token, eos_token=self.eos_token)  # fmt: skip
        return self._starts_with_bos(text)

    def _starts_with_bos(self, text: str) -> bool:
        return bool(self.bos_token) and text.startswith(self.bos_token)

    def tokens(self, text: str) -> list[int]:
        out: list[int] = self.tokenizer.encode(text, add_special_tokens=False)
        return out

    def bos(self) -> list[int]:
        token_id = self.tokenizer.bos_token_id
        return [int(token_id)] if self.add_bos and token_id is not None else []

    def eos(self) -> list[int]:
        token_id = self.tokenizer.eos_token_id
        return [int(token_id)] if token_id is not None else []


# A file with one of these suffixes is plain text; anything else is read as JSONL.
TEXT_SUFFIXES = (".txt", ".md")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _records(path: Path) -> tuple[str, list[tuple[int, Any]], list[tuple[int, str]]]:
    """(format, [(line, record)], problems) for a JSONL or text file."""
    problems: list[tuple[int, str]] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(str(path), [(0, f"cannot read the file: {exc.strerror}")]) from exc
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(str(path), [(bad_line, "not valid UTF-8")]) from exc
    content = content.removeprefix("\ufeff")  # a byte-order mark (Windows editors)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return "text", [(1, {"text": content})], problems
    records: list[tuple[int, Any]] = []
    # Lines end at "\n" only: U+2028, U+0085 and the like are text inside a JSON string
    # (json.dumps with ensure_ascii=False writes them as they are).
    for n, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append((n, f"invalid JSON ({exc.msg}, column {exc.colno})"))
        except RecursionError:
            problems.append((n, "invalid JSON (nested too deeply)"))
    fmt = _detect(records)
    return fmt, records, problems


def _detect(records: list[tuple[int, Any]]) -> str:
    for _, r in records:
        if isinstance(r, dict):
            if "messages" in r:
                return "chat"
            if "prompt" in r or "completion" in r:
                return "instruction"
            if "text" in r:
                return "text"
    return "unknown"


def _check_chat(record: Any) -> tuple[list[ChatMessage] | None, str | None]:
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        return None, "expected an object with a 'messages' list"
    messages: list[ChatMessage] = []
    for i, m in enumerate(record["messages"]):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return None, f"message {i}: role must be one of {', '.join(ROLES)}"
        content = m.get("content")
        if not isinstance(content, str) or not content.strip():
            return None, f"message {i}: empty or non-text content"
        messages.append(ChatMessage(role=m["role"], content=content))
    if not any(m.role == "assistant" for m in messages):
        return None, "no assistant message to learn from"
    first = next(m for m in messages if m.role not in ("system", "developer"))
    if first.role != "user":
        return None, "the conversation must start with a user message (after any system one)"
    return messages, None


def _check_instruction(record: Any) -> tuple[tuple[str, str] | None, str | None]:
    if not isinstance(record, dict):
        return None, "expected an object with 'prompt' and 'completion'"
    for key in ("prompt", "completion"):
        if key not in record:
            return None, f"missing '{key}'"
        if not isinstance(record[key], str):
            return None, f"'{key}' must be a string"
    if not record["completion"].strip():
        return None, "empty completion"
    return (record["prompt"], record["completion"]), None


def _check_text(record: Any) -> tuple[str | None, str | None]:
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        return None, "expected an object with a 'text' string"
    if not record["text"].strip():
        return None, "empty text"
    return record["text"], None


class TemplateMismatch(ValueError):
    """A conversation the chat template cannot render turn by turn."""


def chat_example(renderer: Renderer, messages: list[ChatMessage]) -> Example:
    """Tokens of a conversation; labels only on assistant turns (with their end marker).
    The text is the one the engine serves: the template's, with the tokenizer's BOS and
    EOS strings, and one BOS token at the start where the template writes it or the model
    adds it."""
    if renderer.chat_template is None:
        raise InvalidRequest("this base model has no chat template; use instruction data")
    bos_id = renderer.tokenizer.bos_token_id
    if renderer.writes_bos(messages) and bos_id is not None:
        ids: list[int] = [int(bos_id)]
    else:
        ids = renderer.bos()
    labels: list[int] = [IGNORE] * len(ids)
    done = ""
    for i, message in enumerate(messages):
        if message.role != "assistant":
            continue
        # The rendered text grows turn by turn; each piece is tokenised on its own so the
        # boundary between what is learnt and what is not is exact.
        prompt = renderer.render(messages[:i], add_generation_prompt=True)
        full = renderer.render(messages[: i + 1], add_generation_prompt=False)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            # The template renders an earlier part of this conversation differently once
            # it goes on (a default system prompt, a rewritten turn): the boundary between
            # context and answer would be guessed, and the text would not be the served one.
            raise TemplateMismatch(
                f"the chat template does not render message {i} after the messages before it"
            )
        context = renderer.tokens(prompt[len(done) :])
        answer = renderer.tokens(full[len(prompt) :])
        ids += context + answer
        labels += [IGNORE] * len(context) + answer
        done = full
    return Example(ids, labels)


def instruction_example(renderer: Renderer, prompt: str, completion: str) -> Example:
    context = renderer.bos() + renderer.tokens(prompt)
    answer = renderer.tokens(completion) + renderer.eos()
    return Example(context + answer, [IGNORE] * len(context) + answer)


def text_examples(renderer: Renderer, text: str, max_length: int) -> list[Example]:
    ids = renderer.tokens(text) + renderer.eos()
    bos = renderer.bos()
    step = max_length - len(bos)
    out = []
    for start in range(0, len(ids), step):
        window = bos + ids[start : start + step]
        if len(window) > len(bos) + 1:
            out.append(Example(window, list(window)))
    return out


# Redaction of one record's texts: each text with its PII masked, and how many values were.
Redact = Callable[[str], tuple[str, int]]


def load(
    path: Path,
    renderer: Renderer,
    max_length: int,
    redactor: Callable[[], Redact] | None = None,
    param: str = "training_file",
) -> Dataset:
    """Read, validate, redact and tokenise ``path``; raise ``DatasetError`` listing every
    problem found (up to ``MAX_ERRORS``) before anything is trained. ``redactor`` gives a
    fresh ``Redact`` for each record, so placeholders are numbered per record: two
    addresses in one conversation are ``<EMAIL_1>`` and ``<EMAIL_2>`` wherever they
    appear in it."""
    sha = file_sha256(path) if path.is_file() else ""
    if not path.is_file():
        raise DatasetError(str(path), [(0, "no such file")], param)
    try:
        fmt, records, problems = _records(path)
    except DatasetError as exc:
        raise DatasetError(str(path), exc.problems, param) from None
    if fmt == "unknown" and not problems:
        problems.append((0, "no records: expected 'messages', 'prompt'/'completion' or 'text'"))
    examples: list[Example] = []
    redacted = 0
    redact: Redact | None = None

    def clean(text: str) -> str:
        nonlocal redacted
        if redact is None:
            return text
        out, count = redact(text)
        redacted += count
        return out

    for line, record in records:
        if len(problems) >= MAX_ERRORS:
            break
        redact = redactor() if redactor is not None else None
        built, error = _build(fmt, record, renderer, max_length, clean)
        if error is not None:
            problems.append((line, error))
            continue
        for example in built:
            if len(example.input_ids) > max_length:
                problems.append(
                    (line, f"{len(example.input_ids)} tokens, longer than max_length {max_length}")
                )
            elif example.trained_tokens == 0:
                problems.append((line, "nothing to learn after tokenisation"))
            else:
                examples.append(example)
    if not problems and not examples:
        problems.append((0, "no usable records"))
    if problems:
        raise DatasetError(str(path), problems, param)
    stats = {
        "examples": len(examples),
        "tokens": sum(len(e.input_ids) for e in examples),
        "trained_tokens": sum(e.trained_tokens for e in examples),
        "max_tokens": max(len(e.input_ids) for e in examples),
    }
    return Dataset(str(path), fmt, sha, examples, redacted, len(records), stats)


def _build(
    fmt: str,
    record: Any,
    renderer: Renderer,
    max_length: int,
    clean: Callable[[str], str],
) -> tuple[list[Example], str | None]:
    if fmt == "chat":
        messages, error = _check_chat(record)
        if messages is None:
            return [], error
        if renderer.chat_template is None:
            return [], "this base model has no chat template; use prompt/completion records"
        cleaned = [ChatMessage(role=m.role, content=clean(m.content)) for m in messages]
        try:
            return [chat_example(renderer, cleaned)], None
        except TemplateMismatch as exc:
            return [], str(exc)
    if fmt == "instruction":
        pair, error = _check_instruction(record)
        if pair is None:
            return [], error
        return [instruction_example(renderer, clean(pair[0]), clean(pair[1]))], None
    text, error = _check_text(record)
    if text is None:
        return [], error
    return text_examples(renderer, clean(text), max_length), None
