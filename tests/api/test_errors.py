"""Every failure answers in the OpenAI error shape with the right status, and none of them
hurts the server."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import (
    UPSTREAM_KEY_ENV,
    Server,
    create_key,
    genaiops_cli,
    openai_client,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"


def post(server: Server, path: str, **kw: object) -> httpx.Response:
    kw.setdefault("headers", server.headers)
    return httpx.post(server.url + path, timeout=60, **kw)  # type: ignore[arg-type]


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


def chat(text: str = "hi", **kw: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **kw}


def test_unknown_model_is_404(server: Server) -> None:
    error = assert_error(
        post(server, "/v1/chat/completions", json=chat(model="nope")), 404, "model_not_found"
    )
    assert error["param"] == "model"
    client = openai_client(server.base_url, server.key)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(temperature="hot"), "temperature"),
        (chat(temperature=9), "temperature"),
        (chat(max_tokens=-5), "max_tokens"),
        (chat(max_tokens=0), "max_tokens"),
        (chat(top_p=10**400), "top_p"),
        (chat(seed=10**30), "seed"),
        (chat(n=129), "n"),
        (chat(n=17, max_tokens=1), "n"),
        (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"model": MODEL, "messages": "hello"}, "messages"),
        (chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
        (chat(tools=[{"type": "function", "function": {}}]), "tools.0"),
        (
            chat(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="some"),
            "tool_choice",
        ),  # fmt: skip
        # Field names that merely start like a type name keep their place in the path.
        (chat(stream="hot", max_tokens=1), "stream"),
        (chat(stream_options={"include_usage": "x"}, max_tokens=1), "stream_options.include_usage"),
        (
            chat(response_format={"type": "json_schema", "json_schema": {"strict": "very"}}),
            "response_format.json_schema.strict",
        ),
        (chat(stop=[1]), "stop"),
        # JSON types are not coerced: a string is not a number, nor a string a boolean.
        (chat(max_tokens="12"), "max_tokens"),
        (chat(stream="yes", max_tokens=1), "stream"),
        (chat(temperature="1", max_tokens=1), "temperature"),
        (chat(seed=1.5, max_tokens=1), "seed"),
        (chat(n="1", max_tokens=1), "n"),
        (chat(max_tokens=True), "max_tokens"),
        (chat(stream_options={"include_usage": 1}, max_tokens=1), "stream_options.include_usage"),
        # As OpenAI answers: stream options without a stream are a mistake, not ignored.
        (chat(stream_options={"include_usage": True}, max_tokens=1), "stream_options"),
    ],
)
def test_invalid_bodies_are_400(server: Server, body: dict[str, object], param: str) -> None:
    error = assert_error(post(server, "/v1/chat/completions", json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


@pytest.mark.parametrize(
    "raw",
    [
        b"{bad json",
        b"",
        b"[]",
        b"null",
        b'{"model": 1e999999}',
        b"\xff\xfe\x00garbage",
        b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "\xff"}]}',
        b"[" * 100000,
    ],
)
def test_malformed_payloads_are_400(server: Server, raw: bytes) -> None:
    r = post(
        server,
        "/v1/chat/completions",
        content=raw,
        headers=server.headers | {"content-type": "application/json"},
    )
    assert_error(r, 400)


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (
            "/v1/chat/completions",
            b'{"model": "%s", "max_tokens": 2, "messages": [{"role": "user", "content": ',
        ),
        ("/v1/completions", b'{"model": "%s", "max_tokens": 2, "prompt": '),
        ("/generate", b'{"max_tokens": 2, "prompt": '),
        ("/v1/guardrails/check", b'{"input": '),
        ("/v1/embeddings", b'{"model": "use-multilingual", "input": '),
    ],
)
def test_unpaired_surrogates_are_400_and_pairs_are_text(
    server: Server, path: str, raw: bytes
) -> None:
    # JSON lets a string escape half of a UTF-16 pair; that is not Unicode text.
    head = raw.replace(b"%s", MODEL.encode())
    close = b"}]}" if b"messages" in raw else b"}"
    headers = server.headers | {"content-type": "application/json"}
    for lone in (rb'"abc \ud800 CPF 529.982.247-25"', rb'"\udc00"', rb'"\uDBFF x"'):
        r = post(server, path, content=head + lone + close, headers=headers)
        error = assert_error(r, 400, "invalid_request")
        assert "surrogate" in str(error["message"])
    # An escaped pair is one character (an emoji) and goes through.
    paired = post(server, path, content=head + rb'"hola \ud83d\ude0a"' + close, headers=headers)
    assert paired.status_code == 200, paired.text


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": "3"}, "max_tokens"),
        ("/v1/completions", {"model": MODEL, "prompt": "x", "echo": "no"}, "echo"),
        ("/v1/completions", {"model": MODEL, "prompt": "x", "stream": 1}, "stream"),
        ("/generate", {"prompt": "x", "max_tokens": "3"}, "max_tokens"),
        ("/generate", {"prompt": "x", "temperature": "0.5", "max_tokens": 1}, "temperature"),
    ],
)
def test_wrong_json_types_are_400(
    server: Server, path: str, body: dict[str, object], param: str
) -> None:
    error = assert_error(post(server, path, json=body), 400, "invalid_request")
    assert error["param"] == param


def test_a_union_field_names_the_rule_of_the_type_sent(server: Server) -> None:
    # "stop" is a string or a list of up to 4: five strings break the list's rule.
    error = assert_error(
        post(server, "/v1/chat/completions", json=chat(stop=["a", "b", "c", "d", "e"])),
        400,
        "invalid_request",
    )
    assert error["param"] == "stop" and "at most 4 items" in str(error["message"])
    assert "more errors" not in str(error["message"])
    # JSON sent as a form (curl -d without a content type) is told how to send it.
    r = httpx.post(
        server.url + "/v1/chat/completions",
        content=json.dumps(chat()),
        headers={**server.headers, "content-type": "application/x-www-form-urlencoded"},
    )
    error = assert_error(r, 400, "invalid_request")
    assert "content-type: application/json" in str(error["message"])


def test_integers_are_accepted_where_numbers_are_expected(server: Server) -> None:
    body = chat(temperature=1, top_p=1, presence_penalty=0, frequency_penalty=0, max_tokens=2)
    assert post(server, "/v1/chat/completions", json=body).status_code == 200
    r = post(server, "/generate", json={"prompt": "Hi", "temperature": 0, "max_tokens": 2})
    assert r.status_code == 200


def test_huge_max_tokens_and_long_prompt_are_context_errors(server: Server) -> None:
    error = assert_error(
        post(server, "/v1/chat/completions", json=chat(max_tokens=10**30)),
        400,
        "context_length_exceeded",
    )
    assert "8192" in str(error["message"])
    long_prompt = "palabra " * 3000  # local-gguf has a 512-token window
    error = assert_error(
        post(
            server,
            "/v1/chat/completions",
            json={"model": "local-gguf", "messages": [{"role": "user", "content": long_prompt}]},
        ),
        400,
        "context_length_exceeded",
    )
    assert "512" in str(error["message"])
    assert error["param"] == "messages"
    error = assert_error(
        post(
            server,
            "/v1/completions",
            json={"model": "local-gguf", "prompt": "hola", "max_tokens": 600},
        ),
        400,
        "context_length_exceeded",
    )
    assert "600" in str(error["message"])
    # The field that overflowed is named as the endpoint calls it.
    assert error["param"] == "prompt"
    for mode in ("chat", "completion"):
        error = assert_error(
            post(
                server,
                "/generate",
                json={"model": "local-gguf", "prompt": "hola", "max_tokens": 600, "mode": mode},
            ),
            400,
            "context_length_exceeded",
        )
        assert error["param"] == "prompt"


def test_oversize_body_is_413(server: Server) -> None:
    big = chat("x" * (2 * 1024 * 1024))
    assert_error(post(server, "/v1/chat/completions", json=big), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"model": "x", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}]}'

    r = post(
        server,
        "/v1/chat/completions",
        content=chunks(),
        headers=server.headers | {"content-type": "application/json"},
    )
    assert_error(r, 413)


def test_queue_full_is_429_with_retry_after(server: Server) -> None:
    """smollm2-tight runs one request and queues one; a third is refused at once."""
    body = {
        "model": "smollm2-tight",
        "prompt": "Count:",
        # Long enough to still be running when the next two arrive on a loaded machine;
        # the client hangs up once the third is refused.
        "max_tokens": 1900,
        "ignore_eos": True,
        "stream": True,
    }
    started = threading.Barrier(2, timeout=60)
    refused = threading.Event()
    results: list[int] = []

    def long_stream() -> None:
        with httpx.stream(
            "POST",
            server.url + "/v1/completions",
            json=body,
            headers=server.headers,
            timeout=120,
        ) as r:
            started.wait()
            results.append(r.status_code)
            for _ in r.iter_bytes():
                if refused.is_set():
                    break

    threads = [threading.Thread(target=long_stream)]
    threads[0].start()
    deadline = time.monotonic() + 30
    while (
        httpx.get(server.url + "/readyz", headers=server.headers).json()["models"]["smollm2-tight"][
            "running"
        ]
        < 1
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The second request waits in the queue; its response headers come once it starts.
    queued = threading.Thread(
        target=lambda: results.append(
            post(
                server, "/v1/completions", json=body | {"stream": False, "max_tokens": 5}
            ).status_code
        )
    )
    queued.start()
    while (
        httpx.get(server.url + "/readyz", headers=server.headers).json()["models"]["smollm2-tight"][
            "queued"
        ]
        < 1
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = post(server, "/v1/completions", json=body | {"stream": False})
    error = assert_error(r, 429, "queue_full")
    assert error["type"] == "rate_limit_error"
    assert int(r.headers["retry-after"]) >= 1
    refused.set()
    started.wait()
    threads[0].join(120)
    queued.join(120)
    assert sorted(results) == [200, 200]


def test_timeout_is_504(server: Server) -> None:
    r = post(
        server,
        "/v1/completions",
        json={"model": "smollm2-slow", "prompt": "Once", "max_tokens": 1500, "ignore_eos": True},
    )
    assert_error(r, 504, "timeout")
    # The timed-out generation was cancelled, so the model is free again.
    deadline = time.monotonic() + 15
    while httpx.get(server.url + "/readyz", headers=server.headers).json()["models"][
        "smollm2-slow"
    ]["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_dead_upstream_is_502(server: Server) -> None:
    error = assert_error(
        post(server, "/v1/chat/completions", json=chat(model="dead-upstream")),
        502,
        "upstream_error",
    )
    assert error["type"] == "upstream_error"
    r = post(server, "/v1/chat/completions", json=chat(model="dead-upstream", stream=True))
    assert_error(r, 502)


def test_the_openai_client_raises_the_matching_error(server: Server) -> None:
    """Every status reaches the official client as its own exception, with the OpenAI
    error body (code, param) parsed and the rate-limit headers kept."""

    def key(**body: object) -> str:
        body = {"tenant": "errs" + uuid.uuid4().hex[:8], "role": "user"} | body
        r = post(server, "/admin/keys", json=body)
        assert r.status_code == 201, r.text
        secret: str = r.json()["key"]
        return secret

    client = openai_client(server.base_url, server.key)
    with pytest.raises(openai.AuthenticationError) as auth:
        openai_client(server.base_url, "gaiops_nope").models.list()
    assert auth.value.status_code == 401
    with pytest.raises(openai.PermissionDeniedError) as denied:
        openai_client(server.base_url, key(models=["gemma3-270m"])).completions.create(
            model=MODEL, prompt="x", max_tokens=1
        )
    assert denied.value.status_code == 403
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model="local-gguf", prompt="word " * 3000, max_tokens=4)
    assert bad.value.code == "context_length_exceeded" and bad.value.param == "prompt"
    with pytest.raises(openai.APIStatusError) as large:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x" * (2 * 1024 * 1024)}]
        )
    assert large.value.status_code == 413 and large.value.code == "payload_too_large"
    limited = openai_client(server.base_url, key(rpm=1))
    limited.completions.create(model=MODEL, prompt="x", max_tokens=1)
    with pytest.raises(openai.RateLimitError) as rate:
        limited.completions.create(model=MODEL, prompt="x", max_tokens=1)
    assert rate.value.code == "requests_exceeded"
    assert int(rate.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.InternalServerError) as upstream:
        client.chat.completions.create(
            model="dead-upstream", messages=[{"role": "user", "content": "hi"}]
        )
    assert upstream.value.status_code == 502 and upstream.value.code == "upstream_error"
    with pytest.raises(openai.InternalServerError) as timeout:
        client.completions.create(
            model="smollm2-slow",
            prompt="Once",
            max_tokens=1500,
            extra_body={"ignore_eos": True},
        )
    assert timeout.value.status_code == 504 and timeout.value.code == "timeout"


def test_unknown_route_and_method(server: Server) -> None:
    assert_error(httpx.get(server.url + "/v1/nothing", headers=server.headers), 404)
    assert_error(httpx.get(server.url + "/v1/chat/completions", headers=server.headers), 405)


def test_disconnect_mid_stream_stops_generation(server: Server) -> None:
    def stats() -> dict[str, int]:
        return httpx.get(server.url + "/readyz", headers=server.headers).json()["models"][MODEL]  # type: ignore[no-any-return]

    before = stats()
    body = {
        "model": MODEL,
        "prompt": "Once upon a time",
        "max_tokens": 4000,
        "ignore_eos": True,
        "stream": True,
    }
    received = 0
    with httpx.stream(
        "POST", server.url + "/v1/completions", json=body, headers=server.headers, timeout=60
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                received += 1
            if received >= 5:
                break  # leaving the block closes the connection mid-stream
    # 4000 tokens would take tens of seconds; a cancelled stream frees the model at once.
    deadline = time.monotonic() + 15
    while stats()["running"]:
        assert time.monotonic() < deadline, "generation kept running after the disconnect"
        time.sleep(0.02)
    after = stats()
    assert after["cancelled"] == before["cancelled"] + 1


def test_raw_socket_garbage_does_not_crash(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    for payload in (
        b"GARBAGE\r\n\r\n",
        b"POST /v1/completions HTTP/1.1\r\nContent-Length: 99\r\n\r\n{",
    ):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            s.recv(1024)
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_server_survives_everything(server: Server) -> None:
    r = post(server, "/v1/chat/completions", json=chat("Still there?", max_tokens=4))
    assert r.status_code == 200
    assert server.process.poll() is None


def test_disconnect_while_waiting_for_non_streamed_answer(server: Server) -> None:
    def stats() -> dict[str, int]:
        return httpx.get(server.url + "/readyz", headers=server.headers).json()["models"][MODEL]  # type: ignore[no-any-return]

    before = stats()["cancelled"]
    body = (
        b'{"model": "smollm2-135m-instruct", "prompt": "Once", "max_tokens": 4000,'
        b' "ignore_eos": true}'
    )
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {server.key}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + 10
        while not stats()["running"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    deadline = time.monotonic() + 15
    while stats()["running"]:
        assert time.monotonic() < deadline, "generation kept running after the client left"
        time.sleep(0.02)
    assert stats()["cancelled"] == before + 1


def test_disconnect_while_queued_frees_the_queue_place(server: Server) -> None:
    """smollm2-tight runs one request and queues one. A streaming client that leaves while
    queued gives its place back at once and its request never runs."""

    def stats() -> dict[str, int]:
        return httpx.get(server.url + "/readyz", headers=server.headers).json()["models"][
            "smollm2-tight"
        ]  # type: ignore[no-any-return]

    before = stats()
    long_body = {
        "model": "smollm2-tight",
        "prompt": "Once upon a time",
        "max_tokens": 2000,  # within smollm2-tight's 2048-token window
        "ignore_eos": True,
        "stream": True,
    }
    first_token = threading.Event()
    leave = threading.Event()

    def long_stream() -> None:
        with httpx.stream(
            "POST",
            server.url + "/v1/completions",
            json=long_body,
            headers=server.headers,
            timeout=120,
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    first_token.set()
                if leave.is_set():
                    break  # closing the connection cancels the long generation

    # A collection to ask, so that /ask reaches the model (nothing relevant is answered
    # without it).
    r = post(server, "/v1/collections", json={"name": "cola"})
    assert r.status_code == 201, r.text
    r = httpx.post(
        server.url + "/v1/collections/cola/documents",
        files={"files": ("faro.txt", "El faro de la isla se enciende cada noche a las ocho.")},
        headers=server.headers,
        timeout=120,
    )
    assert r.status_code == 200, r.text
    abandoned = [
        ("/v1/completions", {"model": "smollm2-tight", "prompt": "Once", "max_tokens": 50}),
        (
            "/v1/collections/cola/ask",
            {"model": "smollm2-tight", "question": "¿A qué hora se enciende el faro?"},
        ),
    ]

    runner = threading.Thread(target=long_stream)
    runner.start()
    try:
        assert first_token.wait(120)
        host, port = server.url.removeprefix("http://").split(":")
        for n, (path, fields) in enumerate(abandoned, start=1):
            body = json.dumps(fields | {"stream": True}).encode()
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode()
                    + b"Content-Type: application/json\r\n"
                    + f"Authorization: Bearer {server.key}\r\n".encode()
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                deadline = time.monotonic() + 10
                while stats()["queued"] < 1:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
            # The client is gone: its place is free while the long generation still runs.
            deadline = time.monotonic() + 15
            while stats()["queued"]:
                assert time.monotonic() < deadline, f"an abandoned {path} kept its queue place"
                time.sleep(0.02)
            now = stats()
            assert now["running"] == 1
            assert now["cancelled"] == before["cancelled"] + n
        # So another request is admitted (queued) instead of being refused with 429.
        result: list[int] = []
        queued = threading.Thread(
            target=lambda: result.append(
                post(
                    server,
                    "/v1/completions",
                    json={"model": "smollm2-tight", "prompt": "Hi", "max_tokens": 2},
                ).status_code
            )
        )
        queued.start()
        deadline = time.monotonic() + 10
        while stats()["queued"] < 1 and not result:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        leave.set()
        runner.join(120)
    queued.join(120)
    assert result == [200]
    after = stats()
    assert after["rejected"] == before["rejected"]
    # The long stream and the abandoned requests were cancelled; only the last completed.
    assert after["cancelled"] == before["cancelled"] + 3
    assert after["completed"] == before["completed"] + 1


@pytest.fixture(scope="module")
def misconfigured(tmp_path_factory: pytest.TempPathFactory, upstream: Server) -> Iterator[Server]:
    """A gateway whose remote models reach the upstream with a wrong API key, ask it for a
    model it does not serve, or use a key it limits to one request a minute."""
    tmp = tmp_path_factory.mktemp("misconfigured")
    limited = create_key(upstream.data_dir, "--tenant", "limited", "--role", "user", "--rpm", "1")
    remote = f'engine = "remote"\nbase_url = "{upstream.base_url}"\n'
    config = f"""
bundled_models = []
default_model = "wrong-key"

[[models]]
name = "wrong-key"
{remote}upstream_model = "smollm2-135m-instruct"
api_key_env = "GENAIOPS_TEST_WRONG_KEY"

[[models]]
name = "wrong-model"
{remote}upstream_model = "no-such-model"
api_key_env = "{UPSTREAM_KEY_ENV}"

[[models]]
name = "limited"
{remote}upstream_model = "smollm2-135m-instruct"
api_key_env = "GENAIOPS_TEST_LIMITED_KEY"
"""
    assert upstream.key is not None
    env = {
        "GENAIOPS_TEST_WRONG_KEY": "sk-not-a-key-of-the-upstream",
        "GENAIOPS_TEST_LIMITED_KEY": limited,
        UPSTREAM_KEY_ENV: upstream.key,
    }
    server = start_server(tmp, "misconfigured", config, env=env)
    yield server
    stop_server(server)


@pytest.mark.parametrize(("model", "upstream_status"), [("wrong-key", 401), ("wrong-model", 404)])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_misconfiguration_is_502(
    misconfigured: Server, model: str, upstream_status: int, stream: bool
) -> None:
    """The caller's key and model were fine; the gateway's own setup was not."""
    listed = httpx.get(misconfigured.base_url + "/models", headers=misconfigured.headers)
    assert model in {m["id"] for m in listed.json()["data"]}
    r = post(
        misconfigured,
        "/v1/chat/completions",
        json=chat(model=model, max_tokens=2, stream=stream),
    )
    error = assert_error(r, 502, "upstream_error")
    assert error["type"] == "upstream_error"
    assert f"answered {upstream_status}" in str(error["message"])


def test_upstream_rate_limit_keeps_its_retry_after(misconfigured: Server) -> None:
    body = chat(model="limited", max_tokens=1)
    assert post(misconfigured, "/v1/chat/completions", json=body).status_code == 200
    r = post(misconfigured, "/v1/chat/completions", json=body)
    error = assert_error(r, 429)
    # The upstream's own refusal (its rate limit), not the gateway's queue.
    assert error["type"] == "rate_limit_error"
    assert error["code"] != "queue_full"
    assert int(r.headers["retry-after"]) >= 1


def test_request_id_is_forwarded_to_the_upstream(server: Server, upstream: Server) -> None:
    request_id = f"trace-{uuid.uuid4().hex}"
    r = post(
        server,
        "/v1/chat/completions",
        json=chat(model="upstream-chat", max_tokens=2),
        headers=server.headers | {"x-request-id": request_id},
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == request_id
    # The upstream logged the request under the same id.
    deadline = time.monotonic() + 10
    while request_id not in upstream.log.read_text():
        assert time.monotonic() < deadline, "the upstream never saw the request id"
        time.sleep(0.1)


def test_sigterm_answers_the_queue_503_and_ends_running_streams_cleanly(
    tmp_path: Path,
) -> None:
    """On SIGTERM the queued requests are answered 503 at once (their clients retry on
    another replica), and a stream still running when the grace period ends gets an error
    event and [DONE] instead of a cut connection; the audit log records 503s and verifies."""
    stopping = start_server(
        tmp_path,
        "stopping",
        'bundled_models = ["smollm2-135m-instruct"]\n[auth]\nenabled = false\n'
        "[server]\nshutdown_grace_s = 8\n",
    )
    results: dict[str, Any] = {}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell a long story."}]}

    def long_stream() -> None:
        with httpx.stream(
            "POST",
            stopping.url + "/v1/chat/completions",
            json=body | {"max_tokens": 4000, "ignore_eos": True, "stream": True},
            timeout=60,
        ) as r:
            results["stream"] = [line for line in r.iter_lines() if line]

    def queued() -> None:
        r = httpx.post(
            stopping.url + "/v1/chat/completions", json=body | {"max_tokens": 8}, timeout=60
        )
        results["queued"] = (r.status_code, r.json()["error"]["code"])

    runner = threading.Thread(target=long_stream)
    runner.start()
    deadline = time.monotonic() + 60
    while httpx.get(stopping.url + "/readyz").json()["models"][MODEL]["running"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    waiter = threading.Thread(target=queued)
    waiter.start()
    while httpx.get(stopping.url + "/readyz").json()["models"][MODEL]["queued"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stopping.process.send_signal(signal.SIGTERM)
    waiter.join(30)
    runner.join(30)
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert stopping.process.wait(30) in (0, -signal.SIGTERM)
    assert results["queued"] == (503, "model_not_ready")
    lines = results["stream"]
    assert lines[-1] == "data: [DONE]"
    assert "stopped with its server" in lines[-2] and '"error"' in lines[-2]
    assert "Traceback" not in stopping.log.read_text()
    verified = genaiops_cli("audit", "verify", "--config", str(stopping.config),
                            data_dir=stopping.data_dir)  # fmt: skip
    assert "intact" in verified.stdout
    statuses = [
        json.loads(line)["status"]
        for line in genaiops_cli(
            "audit",
            "export",
            "--format",
            "jsonl",
            "--config",
            str(stopping.config),
            data_dir=stopping.data_dir,
        ).stdout.splitlines()  # fmt: skip
        if json.loads(line)["event"] == "inference"
    ]
    assert sorted(statuses) == [503, 503]
