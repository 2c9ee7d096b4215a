"""Several choices per request (``n``) through the HTTP API with the bundled model: each
choice a generation of its own (seed + index), reproducible, and admitted and charged
like one."""

from __future__ import annotations

import json

import openai
import pytest

from tests.api.test_security import admin, complete, error_of, new_key
from tests.conftest import Server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "Suggest a name for a coffee shop in Lima."}]


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0, timeout=180)


def test_chat_choices_are_seeded_generations_of_their_own(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        n=3,
        max_tokens=12,
        temperature=1,
        seed=5,  # type: ignore[arg-type]
    )
    texts = [c.message.content for c in r.choices]
    assert [c.index for c in r.choices] == [0, 1, 2] and all(texts)
    assert len(set(texts)) > 1  # different seeds, different answers
    # Choice i is the answer to the same request with seed 5 + i, alone.
    for i, text in enumerate(texts):
        alone = client.chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            max_tokens=12,
            temperature=1,
            seed=5 + i,  # type: ignore[arg-type]
        )
        assert alone.choices[0].message.content == text
        assert alone.usage is not None and r.usage is not None
        single = alone.usage.prompt_tokens
    # Every choice read the prompt and is charged for it.
    assert r.usage is not None and r.usage.prompt_tokens == 3 * single
    again = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        n=3,
        max_tokens=12,
        temperature=1,
        seed=5,  # type: ignore[arg-type]
    )
    assert [c.message.content for c in again.choices] == texts


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
