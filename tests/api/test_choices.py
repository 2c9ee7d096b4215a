"""Several choices per request (``n``) through the HTTP API with the bundled model: each
choice a generation of its own (seed + index), reproducible, and admitted and charged
like one."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.api.test_security import admin, complete, error_of, new_key
from tests.conftest import Server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "Suggest a name for a coffee shop in Lima."}]


def ask(client: openai.OpenAI, **kw: Any) -> Any:
    """The coffee-shop question at temperature 1."""
    return client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=1, **kw)  # type: ignore[arg-type]


def test_chat_choices_are_seeded_generations_of_their_own(client: openai.OpenAI) -> None:
    r = ask(client, n=3, max_tokens=12, seed=5)
    texts = [c.message.content for c in r.choices]
    assert [c.index for c in r.choices] == [0, 1, 2] and all(texts)
    assert len(set(texts)) > 1  # different seeds, different answers
    # Choice i is the answer to the same request with seed 5 + i, alone.
    for i, text in enumerate(texts):
        alone = ask(client, max_tokens=12, seed=5 + i)
        assert alone.choices[0].message.content == text
        assert alone.usage is not None and r.usage is not None
        single = alone.usage.prompt_tokens
    # Every choice read the prompt and is charged for it.
    assert r.usage is not None and r.usage.prompt_tokens == 3 * single
    again = ask(client, n=3, max_tokens=12, seed=5)
    assert [c.message.content for c in again.choices] == texts


def test_streamed_choices_follow_one_another(client: openai.OpenAI) -> None:
    whole = ask(client, n=2, max_tokens=10, seed=8)
    chunks = list(ask(client, n=2, max_tokens=10, seed=8, stream=True,
                      stream_options={"include_usage": True}, logprobs=True))  # fmt: skip
    texts, finishes, order, entries = ["", ""], [None, None], [], [0, 0]
    for chunk in chunks:
        for c in chunk.choices:
            order.append(c.index)
            texts[c.index] += c.delta.content or ""
            finishes[c.index] = c.finish_reason or finishes[c.index]
            entries[c.index] += len(c.logprobs.content or []) if c.logprobs else 0
    assert texts == [c.message.content for c in whole.choices]
    assert finishes == [c.finish_reason for c in whole.choices]
    assert order == sorted(order) and set(order) == {0, 1}  # choice 1 after choice 0
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[-1].usage is not None and whole.usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert sum(entries) == whole.usage.completion_tokens  # one entry per token
    completion = client.completions.create(model="gemma3-270m", prompt="Hola", n=3,
                                           max_tokens=3, stream=True, seed=2)  # fmt: skip
    indexes = [c.choices[0].index for c in completion if c.choices]
    assert indexes == sorted(indexes) and set(indexes) == {0, 1, 2}


def test_completion_choices_with_logprobs_and_structured_chat_choices(
    client: openai.OpenAI,
) -> None:
    r = client.completions.create(model="gemma3-270m", prompt="Uma cidade do Brasil:", n=2,
                                  max_tokens=5, temperature=1, seed=1, logprobs=1)  # fmt: skip
    assert len(r.choices) == 2 and r.usage is not None
    for choice in r.choices:
        assert choice.logprobs is not None
        assert "".join(choice.logprobs.tokens or []) == choice.text
    assert r.usage.completion_tokens == sum(len(c.logprobs.tokens or []) for c in r.choices)  # type: ignore[union-attr]

    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30}},
              "required": ["name"], "additionalProperties": False}  # fmt: skip
    r2 = client.chat.completions.create(
        model=MODEL, messages=QUESTION, n=2, max_tokens=40, temperature=0.8, seed=2,  # type: ignore[arg-type]
        response_format={"type": "json_schema", "json_schema": {"name": "shop", "schema": schema}},
    )  # fmt: skip
    for choice in r2.choices:
        assert set(json.loads(choice.message.content or "")) == {"name"}


def test_every_choice_is_admitted_and_charged(server: Server) -> None:
    """Each choice counts against the key's requests per minute (``n`` cannot multiply
    a limit), and the usage recorded is the usage reported: every choice's tokens."""
    key = new_key(server, rpm=2)["key"]
    error_of(complete(server, key, n=3), 429, "requests_exceeded")

    created = new_key(server)
    r = complete(server, created["key"], n=3, max_tokens=4, temperature=1)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["choices"]) == 3
    recorded = admin(server, "GET", "/admin/usage", params={"tenant": created["tenant"]})
    assert (
        sum(row["total_tokens"] for row in recorded.json()["data"])
        == (body["usage"]["total_tokens"])
    )
    assert body["usage"]["completion_tokens"] <= 12

    # Streamed: the record counts every choice too.
    streamed = new_key(server)
    r = complete(server, streamed["key"], n=2, max_tokens=4, stream=True,
                 stream_options={"include_usage": True})  # fmt: skip
    events = [line.removeprefix("data: ") for line in r.text.splitlines() if line]
    assert events[-1] == "[DONE]"
    reported = json.loads(events[-2])["usage"]
    recorded = admin(server, "GET", "/admin/usage", params={"tenant": streamed["tenant"]})
    assert sum(row["total_tokens"] for row in recorded.json()["data"]) == reported["total_tokens"]
