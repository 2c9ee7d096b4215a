"""The OpenAI-compatible API through the official openai client, against a real server
running the bundled models."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from genaiops.gateway.guarding import EARLY_WORDS
from tests.conftest import Server, openai_client, start_server, stop_server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"


def ask(client: openai.OpenAI, text: str, **kw: object) -> object:
    return client.chat.completions.create(
        model=kw.pop("model", MODEL),  # type: ignore[arg-type]
        messages=[{"role": "user", "content": text}],
        **kw,  # type: ignore[arg-type]
    )


def test_models_list_shows_catalog(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    ids = {m.id for m in models}
    assert {MODEL, "gemma3-270m", "local-gguf", "upstream-chat"} <= ids
    # Unix timestamps, as OpenAI's clients expect; never the epoch itself.
    assert all(m.created > 1_600_000_000 for m in models)
    assert client.models.retrieve("gemma3-270m").id == "gemma3-270m"
    # The embedders /v1/embeddings serves are models too, as on OpenAI.
    embedder = next(m for m in models if m.id == "use-multilingual")
    assert embedder.model_dump()["capabilities"]["embeddings"] is True
    assert client.models.retrieve("use-multilingual").id == "use-multilingual"
    # "/v1/models/" names no model: a 404, not the default model's card.
    with pytest.raises(openai.NotFoundError):
        client.get("/models/", cast_to=object)


def test_chat_completion_has_text_usage_and_ids(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Name another colour."},
        ],
        max_tokens=24,
        temperature=0,
    )
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == MODEL
    assert r.created > 0
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None
    assert r.usage.prompt_tokens > 20  # system + three turns
    assert 0 < r.usage.completion_tokens <= 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_max_tokens_gives_length_finish(client: openai.OpenAI) -> None:
    r = ask(client, "Write a long story about a dragon.", max_completion_tokens=5, temperature=0.0)
    assert r.choices[0].finish_reason == "length"  # type: ignore[attr-defined]
    assert r.usage.completion_tokens == 5  # type: ignore[attr-defined]


def test_seed_makes_sampling_reproducible(client: openai.OpenAI) -> None:
    a = ask(client, "Invent a name for a cat.", temperature=1.0, seed=1234, max_tokens=24)
    b = ask(client, "Invent a name for a cat.", temperature=1.0, seed=1234, max_tokens=24)
    texts = {
        ask(client, "Invent a name for a cat.", temperature=1.0, seed=s, max_tokens=24)
        .choices[0]
        .message.content  # type: ignore[attr-defined]
        for s in (1, 2, 3)
    }
    assert a.choices[0].message.content == b.choices[0].message.content  # type: ignore[attr-defined]
    assert len(texts) > 1  # different seeds explore different samples
    # The first request of a prompt (evaluated whole) and a repeat (its prompt already in
    # the model's cache) give the same answer too, even at a high temperature.
    topics = ("a lighthouse", "un río", "uma cidade", "a robot chef", "3f9c1a", "b7e2d0")
    for topic in topics + ("el mar", "a festa", "a dragon", "la luna"):
        first, again = (
            ask(client, f"Tell me a story about {topic}.", temperature=1.5, seed=42, max_tokens=16)
            .choices[0]
            .message.content  # type: ignore[attr-defined]
            for _ in range(2)
        )
        assert first == again, topic


def test_stop_sequence_truncates_before_it(client: openai.OpenAI) -> None:
    prompt = "List the days of the week, separated by commas."
    full = ask(client, prompt, temperature=0, max_tokens=40).choices[0].message.content  # type: ignore[attr-defined]
    words = full.split()
    assert len(words) > 3, full
    stop = words[2]
    cut = ask(client, prompt, temperature=0, max_tokens=40, stop=[stop])
    text = cut.choices[0].message.content  # type: ignore[attr-defined]
    assert text == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"  # type: ignore[attr-defined]


def test_stream_matches_non_stream_and_reports_usage(client: openai.OpenAI) -> None:
    prompt = "Give me three tips for learning Spanish."
    whole = ask(client, prompt, temperature=0, max_tokens=40)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            temperature=0,
            max_tokens=40,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # type: ignore[attr-defined]
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [whole.choices[0].finish_reason]  # type: ignore[attr-defined]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[attr-defined]
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens  # type: ignore[attr-defined]
    assert len({c.id for c in chunks}) == 1
    # The default output policy (PII redaction) holds text only to the end of each word,
    # not of each sentence: the answer arrives in many pieces, each ending a word.
    pieces = [c.choices[0].delta.content for c in chunks if c.choices]
    pieces = [p for p in pieces if p]
    sentences = len(re.findall(r"[.!?](\s|$)|\n", text)) + 1
    assert len(pieces) > 2 * sentences
    # Each piece ends a word, or is a very common word let out as it comes ("The").
    assert all(
        p[-1].isspace() or p[-1] in ".!?…" or p.split()[-1].lower() in EARLY_WORDS
        for p in pieces[:-1]
    ), pieces


def test_completions_plain_and_streamed(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="gemma3-270m", prompt="La capital de Brasil es", max_tokens=12, temperature=0
    )
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.usage is not None and r.usage.completion_tokens <= 12
    streamed = client.completions.create(
        model="gemma3-270m",
        prompt="La capital de Brasil es",
        max_tokens=12,
        temperature=0,
        stream=True,
    )
    assert "".join(c.choices[0].text for c in streamed) == r.choices[0].text
    # Without max_tokens a completion stops at OpenAI's default of 16 tokens, not at the
    # end of the context window.
    unbounded = client.completions.create(
        model="gemma3-270m",
        prompt="Uno, dos, tres,",
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert unbounded.usage is not None and unbounded.usage.completion_tokens == 16
    assert unbounded.choices[0].finish_reason == "length"


def test_log_probabilities_of_chat_and_completion_tokens(client: openai.OpenAI) -> None:
    """``logprobs`` with greedy decoding: one entry per generated token whose texts make
    up the answer, each a log probability (<= 0), the sampled token the likeliest of its
    ``top_logprobs`` (best first); streamed chunks carry the entries of their text, and
    a stop sequence's tokens are not reported. Completions use the legacy lists."""
    # Seeded: the whole prompt is evaluated each time, so both answers are the same.
    r = ask(client, "Name three colours.", max_tokens=12, temperature=0, seed=7,
            logprobs=True, top_logprobs=3)  # fmt: skip
    content = r.choices[0].logprobs.content  # type: ignore[attr-defined]
    text = r.choices[0].message.content  # type: ignore[attr-defined]
    assert len(content) == r.usage.completion_tokens == 12  # type: ignore[attr-defined]
    assert b"".join(bytes(e.bytes) for e in content).decode() == text
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        tops = [t.logprob for t in entry.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert entry.top_logprobs[0].token == entry.token
        assert abs(entry.top_logprobs[0].logprob - entry.logprob) < 1e-9
    assert any(e.logprob < -1e-3 for e in content)  # not all certain: real probabilities

    stop = text.split()[2]
    streamed = ask(client, "Name three colours.", max_tokens=12, temperature=0, seed=7,
                   logprobs=True, stream=True, stop=[stop])  # fmt: skip
    pieces, entries = [], []
    for chunk in streamed:
        if chunk.choices and chunk.choices[0].delta.content:  # type: ignore[attr-defined]
            pieces.append(chunk.choices[0].delta.content)  # type: ignore[attr-defined]
            entries += chunk.choices[0].logprobs.content  # type: ignore[attr-defined]
            # A chunk carries the tokens its text completes: a token whose text is only
            # partly out (the rest might start the stop sequence) goes with a later one.
            reported = b"".join(bytes(e.bytes) for e in entries).decode()
            assert "".join(pieces).startswith(reported)
    assert "".join(pieces) == text[: text.index(stop)]
    # The tokens that ran into the stop sequence are not reported.
    assert stop not in reported and text.startswith(reported)
    assert len(entries) >= 3 and all(e.top_logprobs == [] for e in entries)

    plain = client.completions.create(
        model="gemma3-270m", prompt="La capital de Brasil es", max_tokens=6, temperature=0,
        logprobs=2,
    )  # fmt: skip
    lp = plain.choices[0].logprobs
    assert lp is not None and "".join(lp.tokens or []) == plain.choices[0].text
    assert len(lp.token_logprobs or []) == 6 and all(x <= 0 for x in lp.token_logprobs or [])
    assert lp.text_offset == [sum(len(t) for t in (lp.tokens or [])[:i]) for i in range(6)]
    for alts, token in zip(lp.top_logprobs or [], lp.tokens or [], strict=True):
        assert len(alts) == 2 and max(alts, key=alts.__getitem__) == token
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "hi", max_tokens=2, top_logprobs=2)
    assert err.value.param == "top_logprobs"
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "hi", max_tokens=2, logprobs=True, top_logprobs=21)
    assert err.value.param == "top_logprobs"


def test_json_object_mode_returns_json(client: openai.OpenAI) -> None:
    r = ask(
        client,
        "Describe a book as JSON with a title and an author.",
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=120,
    )
    value = json.loads(r.choices[0].message.content)  # type: ignore[attr-defined]
    # OpenAI's json_object mode answers with an object, never a bare list or scalar.
    assert isinstance(value, dict)


def test_top_p_restricts_sampling_to_the_nucleus(client: openai.OpenAI) -> None:
    """With a tiny top_p only the most likely token survives, so sampling at a high
    temperature gives the greedy answer whatever the seed; with top_p 1 it does not."""
    prompt = "Write one sentence about the sea."
    greedy = ask(client, prompt, temperature=0, max_tokens=24).choices[0].message.content

    def sampled(top_p: float, seed: int) -> str | None:
        r = ask(client, prompt, temperature=1.8, top_p=top_p, seed=seed, max_tokens=24)
        return r.choices[0].message.content

    assert all(sampled(1e-6, seed) == greedy for seed in (1, 2, 3))
    assert any(sampled(1.0, seed) != greedy for seed in (1, 2, 3))


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "population": {"type": "integer"},
            "coastal": {"type": "boolean"},
        },
        "required": ["city", "population", "coastal"],
        "additionalProperties": False,
    }
    r = ask(
        client,
        "Give me facts about Lisbon.",
        temperature=0,
        max_tokens=200,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
    )
    value = json.loads(r.choices[0].message.content)  # type: ignore[attr-defined]
    jsonschema.validate(value, schema)
    # A schema whose grammar llama.cpp refuses (a maxLength in the thousands) is a 400,
    # and the server goes on serving: it used to take the process down.
    with pytest.raises(openai.BadRequestError) as err:
        ask(
            client,
            "Write a word.",
            max_tokens=4,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": {"type": "string", "maxLength": 5000}},
            },
        )
    assert err.value.param == "response_format"
    assert ask(client, "Say hi", max_tokens=2).choices[0].message.content is not None  # type: ignore[attr-defined]


def test_base_model_refuses_chat_but_completes(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "Hola", model="gemma3-270m")
    assert "chat template" in str(err.value)
    assert err.value.code == "chat_not_supported"


def test_local_gguf_path_with_template_override(client: openai.OpenAI) -> None:
    r = ask(client, "Say hi", model="local-gguf", max_tokens=8, temperature=0)
    assert r.choices[0].message.content  # type: ignore[attr-defined]


def test_remote_upstream_is_proxied_faithfully(client: openai.OpenAI, upstream: Server) -> None:
    direct = openai_client(upstream.base_url, upstream.key)
    kw = {"temperature": 0, "max_tokens": 20}
    mine = ask(client, "What is a llama?", model="upstream-chat", **kw)
    theirs = ask(direct, "What is a llama?", **kw)
    assert mine.model == "upstream-chat"  # type: ignore[attr-defined]
    assert mine.choices[0].message.content == theirs.choices[0].message.content  # type: ignore[attr-defined]
    assert mine.usage.prompt_tokens == theirs.usage.prompt_tokens  # type: ignore[attr-defined]
    assert mine.usage.completion_tokens == theirs.usage.completion_tokens  # type: ignore[attr-defined]
    streamed = client.chat.completions.create(
        model="upstream-chat",
        messages=[{"role": "user", "content": "What is a llama?"}],
        stream=True,
        stream_options={"include_usage": True},
        **kw,  # type: ignore[arg-type]
    )
    chunks = list(streamed)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == theirs.choices[0].message.content
    )  # type: ignore[attr-defined]
    assert chunks[-1].usage.completion_tokens == theirs.usage.completion_tokens  # type: ignore[union-attr,attr-defined]


def test_remote_upstream_relays_logprobs_and_refusals(client: openai.OpenAI) -> None:
    """Log probabilities come back from the upstream as it reported them, streamed or
    not. Tools are relayed (tests/api/test_tool_relay.py) and this upstream's model calls
    them. ``user`` is forwarded."""
    r = ask(client, "Name a colour.", model="upstream-chat", max_tokens=5, temperature=0,
            seed=3, logprobs=True, top_logprobs=2)  # fmt: skip
    content = r.choices[0].logprobs.content  # type: ignore[attr-defined]
    assert len(content) == 5 and all(e.logprob <= 0 and len(e.top_logprobs) == 2 for e in content)
    text = r.choices[0].message.content  # type: ignore[attr-defined]
    assert b"".join(bytes(e.bytes) for e in content).decode() == text
    direct = ask(client, "Name a colour.", max_tokens=5, temperature=0, seed=3, logprobs=True)
    assert [e.token for e in direct.choices[0].logprobs.content] == [e.token for e in content]  # type: ignore[attr-defined]
    streamed = ask(client, "Name a colour.", model="upstream-chat", max_tokens=5,
                   temperature=0, seed=3, logprobs=True, stream=True)  # fmt: skip
    entries = [e for c in streamed if c.choices and c.choices[0].logprobs  # type: ignore[attr-defined]
               for e in c.choices[0].logprobs.content or []]  # type: ignore[attr-defined]  # fmt: skip
    assert [e.token for e in entries] == [e.token for e in content]
    # Tools go to the upstream, whose model (local there) calls one.
    city = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": city}}
    called = ask(client, "Weather in Lima?", model="upstream-chat", max_tokens=40,
                 tools=[tool], tool_choice="required", temperature=0)  # fmt: skip
    [call] = called.choices[0].message.tool_calls  # type: ignore[attr-defined]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    assert called.choices[0].finish_reason == "tool_calls"  # type: ignore[attr-defined]
    r = ask(client, "hi", model="upstream-chat", max_tokens=4, user="end-user-42")
    assert r.choices[0].message.content is not None  # type: ignore[attr-defined]
    # An empty logit_bias or tool list asks for nothing: served, not refused.
    r = ask(client, "hi", max_tokens=2, logit_bias={}, tools=[])
    assert r.choices[0].message.content is not None  # type: ignore[attr-defined]


def test_remote_upstream_errors_pass_through(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "hello " * 9000, model="upstream-chat")
    assert err.value.code == "context_length_exceeded"


def test_two_clients_streaming_at_once(client: openai.OpenAI) -> None:
    prompts = ["Tell me about the sea.", "Tell me about mountains."]
    # Seeded, so each request evaluates its whole prompt whatever the model ran before:
    # the answers do not depend on which stream reaches the model first.
    expected = [
        ask(client, p, temperature=0, max_tokens=30, seed=7).choices[0].message.content  # type: ignore[attr-defined]
        for p in prompts
    ]
    results: dict[int, str] = {}

    def stream(i: int) -> None:
        parts = []
        for c in client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompts[i]}],
            temperature=0,
            max_tokens=30,
            seed=7,
            stream=True,
        ):
            parts.append(c.choices[0].delta.content or "")
        results[i] = "".join(parts)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [results[0], results[1]] == expected


def test_generate_endpoint(server: Server) -> None:
    r = httpx.post(
        server.url + "/generate",
        json={"prompt": "Write one word.", "max_tokens": 8},
        headers=server.headers,
        timeout=60,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["text"]
    assert body["model"] == MODEL
    usage = body["usage"]
    assert usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    base = httpx.post(
        server.url + "/generate",
        json={"prompt": "O Brasil é", "model": "gemma3-270m", "max_tokens": 6},
        headers=server.headers,
        timeout=60,
    ).json()
    # A base model is driven as a plain completion: the prompt is only the user's text.
    assert base["usage"]["prompt_tokens"] < 10


def test_liveness_answers_while_the_server_loads(tmp_path: Path) -> None:
    """/healthz answers as soon as the process listens; /readyz says 503 until the models
    and guards are loaded, then 200."""
    seen: list[tuple[int, int]] = []
    server = start_server(
        tmp_path, "loading", 'bundled_models = ["smollm2-135m-instruct"]\n', watch=seen
    )
    try:
        assert (200, 503) in seen, seen
        assert all(health == 200 for health, _ in seen)
    finally:
        stop_server(server)


def test_health_ready_and_docs(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    # A probe without a key learns the status and counts, not the catalog or its traffic.
    probe = httpx.get(server.url + "/readyz")
    assert probe.status_code == 200
    body = probe.json()
    assert body["status"] == "ready" and MODEL not in json.dumps(body)
    assert body["models"]["total"] == body["models"]["ready"] + body["models"]["failed"]
    assert body["models"]["loading"] == 0
    ready = httpx.get(server.url + "/readyz", headers=server.headers).json()
    assert ready["status"] == "ready" and ready["guardrails"] == "ready"
    assert ready["models"][MODEL]["state"] == "ready"
    assert httpx.get(server.url + "/docs").status_code == 200
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"]
    assert "/generate" in spec["paths"]
