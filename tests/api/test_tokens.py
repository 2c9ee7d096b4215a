"""Token ids over HTTP with the bundled models: /tokenize and /detokenize give the ids a
request is charged for, and ``logit_bias`` on those ids bans or forces tokens, locally
and through a remote upstream."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Server, create_key

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


def post(server: Server, path: str, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else server.headers
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60)


def ids_of(server: Server, text: str, model: str = MODEL) -> list[int]:
    r = post(server, "/tokenize", {"model": model, "prompt": text})
    assert r.status_code == 200, r.text
    tokens: list[int] = r.json()["tokens"]
    return tokens


def test_tokenize_counts_what_requests_are_charged(server: Server, client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "Responde en español."},
                {"role": "user", "content": "¿Cuál es la capital de Perú?"}]  # fmt: skip
    r = post(server, "/tokenize", {"model": MODEL, "messages": messages})
    assert r.status_code == 200, r.text
    body = r.json()
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)  # type: ignore[arg-type]
    assert chat.usage is not None and body["count"] == chat.usage.prompt_tokens
    assert body["count"] == len(body["tokens"]) and body["max_model_len"] == 8192
    assert body["token_strs"] is None
    # The chat template is in the ids: more of them than the two texts alone.
    plain = ids_of(server, "Responde en español.¿Cuál es la capital de Perú?")
    assert body["count"] > len(plain)

    # A completion prompt on the multilingual base: its beginning-of-sequence token too.
    text = "A capital do Brasil é Brasília, e a do México é a Cidade do México."
    r = post(server, "/tokenize", {"model": "gemma3-270m", "prompt": text,
                                   "return_token_strs": True})  # fmt: skip
    body = r.json()
    done = client.completions.create(model="gemma3-270m", prompt=text, max_tokens=1)
    assert done.usage is not None and body["count"] == done.usage.prompt_tokens
    assert body["token_strs"][0] == "<bos>" and "".join(body["token_strs"][1:]) == text
    back = post(server, "/detokenize", {"model": "gemma3-270m", "tokens": body["tokens"]})
    assert back.json() == {"prompt": "<bos>" + text}

    # SmolLM2 adds no such token: its ids spell the text exactly, round trip included.
    tokens = ids_of(server, "Olá, tudo bem? ¡Sí, señor!")
    r = post(server, "/detokenize", {"model": MODEL, "tokens": tokens})
    assert r.json()["prompt"] == "Olá, tudo bem? ¡Sí, señor!"
    # A remote model's come from its upstream (here another genaiops serving SmolLM2).
    relayed = post(server, "/tokenize", {"model": "upstream-chat", "messages": messages,
                                         "return_token_strs": True})  # fmt: skip
    assert relayed.status_code == 200, relayed.text
    local = post(server, "/tokenize", {"model": MODEL, "messages": messages,
                                       "return_token_strs": True})  # fmt: skip
    assert relayed.json() == local.json()
    back = post(server, "/detokenize", {"model": "upstream-chat", "tokens": tokens})
    assert back.json() == {"prompt": "Olá, tudo bem? ¡Sí, señor!"}
    # No model: the default one.
    assert post(server, "/tokenize", {"prompt": "hola"}).json()["tokens"] == ids_of(server, "hola")


def test_tokenize_refuses_what_it_cannot_answer(server: Server) -> None:
    both = {"model": MODEL, "prompt": "a", "messages": [{"role": "user", "content": "b"}]}
    cases: list[tuple[str, dict[str, Any], int, str | None]] = [
        ("/tokenize", {"model": MODEL}, 400, "prompt"),
        ("/tokenize", both, 400, "prompt"),
        ("/tokenize", {"model": MODEL, "prompt": 5}, 400, "prompt"),
        ("/tokenize", {"model": "no-such-model", "prompt": "a"}, 404, "model"),
        ("/tokenize", {"model": "dead-upstream", "prompt": "a"}, 502, None),
        ("/tokenize", {"model": MODEL, "prompt": "a", "add_special": True}, 400, None),
        ("/detokenize", {"model": MODEL, "tokens": [1, 10**9]}, 400, "tokens"),
        ("/detokenize", {"model": MODEL, "tokens": [-1]}, 400, None),
        ("/detokenize", {"model": MODEL, "tokens": ["1"]}, 400, None),
    ]
    for path, body, status, param in cases:
        r = post(server, path, body)
        assert r.status_code == status, (body, r.text)
        error = r.json()["error"]
        assert error["message"] and error["type"]
        if param is not None:
            assert error["param"] == param, (body, error)
    # The key's model list applies, as it does to generation.
    key = create_key(server.data_dir, "--tenant", "tok", "--role", "user",
                     "--models", "gemma3-270m", config=server.config)  # fmt: skip
    assert post(server, "/tokenize", {"model": MODEL, "prompt": "a"}, key).status_code == 403
    allowed = post(server, "/tokenize", {"model": "gemma3-270m", "prompt": "a"}, key)
    assert allowed.status_code == 200
    assert httpx.post(server.url + "/tokenize", json={"prompt": "a"}).status_code == 401


def first_token(client: openai.OpenAI, model: str = MODEL, **kw: Any) -> str:
    r = client.completions.create(model=model, prompt=PROMPT, max_tokens=4, temperature=0,
                                  logprobs=1, **kw)  # fmt: skip
    tokens = r.choices[0].logprobs.tokens  # type: ignore[union-attr]
    assert tokens
    return tokens[0]


def test_logit_bias_bans_and_forces_tokens(server: Server, client: openai.OpenAI) -> None:
    likeliest = first_token(client)
    [banned] = ids_of(server, likeliest)  # the model's first choice, e.g. " Paris"
    other = first_token(client, extra_body={"logit_bias": {str(banned): -100}})
    assert other != likeliest
    # The bias is the caller's: a request without it is back to the first choice.
    assert first_token(client) == likeliest

    # +100 makes one token all but certain, even when sampling at temperature 1.
    [forced] = ids_of(server, " Lima")
    for stream in (False, True):
        r = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=5,
            temperature=1, seed=11, logit_bias={str(forced): 100}, stream=stream,
        )  # fmt: skip
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in r if c.choices)  # type: ignore[union-attr]
        else:
            text = r.choices[0].message.content  # type: ignore[union-attr]
        assert text == " Lima" * 5, (stream, text)

    # Relayed to a remote upstream, which applies it on its side.
    relayed = client.chat.completions.create(
        model="upstream-chat", messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=3, temperature=0, logit_bias={str(forced): 100},
    )  # fmt: skip
    assert relayed.choices[0].message.content == " Lima" * 3


def test_logit_bias_is_validated(client: openai.OpenAI) -> None:
    for bias, fragment in [
        ({"abc": 1}, "token ids"),
        ({"-5": 1}, "token ids"),
        ({"12": 100.5}, "-100 to 100"),
        ({str(i): 1 for i in range(301)}, "at most 300"),
        ({"99999999": 1}, "does not have"),
    ]:
        with pytest.raises(openai.BadRequestError) as err:
            client.completions.create(model=MODEL, prompt="a", max_tokens=1, logit_bias=bias)  # type: ignore[arg-type]
        assert err.value.param == "logit_bias" and fragment in err.value.message, err.value
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL, prompt="a", max_tokens=1,
                                  extra_body={"logit_bias": {"12": "5"}})  # fmt: skip
    assert err.value.param is not None and err.value.param.startswith("logit_bias")
