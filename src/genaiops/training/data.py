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

Redaction uses the PII guard's detector with masking (``<EMAIL_1>``...), so personal data in
training files never reaches the weights; the number of redacted values is reported.
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


class DatasetError(InvalidRequest):
    """The dataset cannot be trained on; ``problems`` lists ``(line, message)`` pairs."""

    def __init__(self, path: str, problems: Sequence[tuple[int, str]]):
        self.problems = list(problems)
        shown = "; ".join(f"line {n}: {msg}" if n else msg for n, msg in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(
            f"{path}: {len(self.problems)} problem(s): {shown}{more}",
            param="training_file",
            code="invalid_training_file",
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
    """Turns records into token segments; built by ``training.base`` for one base model."""

    tokenizer: Any
    chat_template: str | None  # None: the base has none and chat data is refused
    bos_token: str = ""
    eos_token: str = ""
    add_bos: bool = True

    def tokens(self, text: str) -> list[int]:
        out: list[int] = self.tokenizer.encode(text, add_special_tokens=False)
        return out

    def bos(self) -> list[int]:
        token_id = self.tokenizer.bos_token_id
        return [int(token_id)] if self.add_bos and token_id is not None else []

    def eos(self) -> list[int]:
        token_id = self.tokenizer.eos_token_id
        return [int(token_id)] if token_id is not None else []


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
    if path.suffix.lower() in (".txt", ".md"):
        return "text", [(1, {"text": content})], problems
    records: list[tuple[int, Any]] = []
    for n, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append((n, f"invalid JSON ({exc.msg}, column {exc.colno})"))
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


def chat_example(renderer: Renderer, messages: list[ChatMessage]) -> Example:
    """Tokens of a conversation; labels only on assistant turns (with their end marker)."""
    if renderer.chat_template is None:
        raise InvalidRequest("this base model has no chat template; use instruction data")
    ids: list[int] = renderer.bos()
    labels: list[int] = [IGNORE] * len(ids)
    template = renderer.chat_template
    done = ""
    for i, message in enumerate(messages):
        if message.role != "assistant":
            continue
        # The rendered text grows turn by turn; each piece is tokenised on its own so the
        # boundary between what is learnt and what is not is exact.
        prompt = render(template, messages[:i], add_generation_prompt=True,
                        bos_token=renderer.bos_token, eos_token=renderer.eos_token)  # fmt: skip
        full = render(template, messages[: i + 1], add_generation_prompt=False,
                      bos_token=renderer.bos_token, eos_token=renderer.eos_token)  # fmt: skip
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


def load(
    path: Path,
    renderer: Renderer,
    max_length: int,
    redact: Callable[[str], tuple[str, int]] | None = None,
) -> Dataset:
    """Read, validate, redact and tokenise ``path``; raise ``DatasetError`` listing every
    problem found (up to ``MAX_ERRORS``) before anything is trained."""
    sha = file_sha256(path) if path.is_file() else ""
    if not path.is_file():
        raise DatasetError(str(path), [(0, "no such file")])
    fmt, records, problems = _records(path)
    if fmt == "unknown" and not problems:
        problems.append((0, "no records: expected 'messages', 'prompt'/'completion' or 'text'"))
    examples: list[Example] = []
    redacted = 0

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
        raise DatasetError(str(path), problems)
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
        return [chat_example(renderer, cleaned)], None
    if fmt == "instruction":
        pair, error = _check_instruction(record)
        if pair is None:
            return [], error
        return [instruction_example(renderer, clean(pair[0]), clean(pair[1]))], None
    text, error = _check_text(record)
    if text is None:
        return [], error
    return text_examples(renderer, clean(text), max_length), None
