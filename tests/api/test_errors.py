"""Every failure answers in the OpenAI error shape with the right status, and none of them
hurts the server."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import openai
import pytest

from tests.conftest import Server

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
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)
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
        (chat(n=2), "n"),
        (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"model": MODEL, "messages": "hello"}, "messages"),
        (chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
        (chat(tools=[{"type": "function", "function": {"name": "f"}}]), "tools"),
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
        "max_tokens": 300,
        "ignore_eos": True,
        "stream": True,
    }
    started = threading.Barrier(2, timeout=60)
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
                pass

    threads = [threading.Thread(target=long_stream)]
    threads[0].start()
    deadline = time.monotonic() + 30
    while httpx.get(server.url + "/readyz").json()["models"]["smollm2-tight"]["running"] < 1:
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
    while httpx.get(server.url + "/readyz").json()["models"]["smollm2-tight"]["queued"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = post(server, "/v1/completions", json=body | {"stream": False})
    error = assert_error(r, 429, "queue_full")
    assert error["type"] == "rate_limit_error"
    assert int(r.headers["retry-after"]) >= 1
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
    deadline = time.monotonic() + 5
    while httpx.get(server.url + "/readyz").json()["models"]["smollm2-slow"]["running"]:
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


def test_unknown_route_and_method(server: Server) -> None:
    assert_error(httpx.get(server.url + "/v1/nothing", headers=server.headers), 404)
    assert_error(httpx.get(server.url + "/v1/chat/completions", headers=server.headers), 405)


def test_disconnect_mid_stream_stops_generation(server: Server) -> None:
    def stats() -> dict[str, int]:
        return httpx.get(server.url + "/readyz").json()["models"][MODEL]  # type: ignore[no-any-return]

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
    deadline = time.monotonic() + 3
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
        return httpx.get(server.url + "/readyz").json()["models"][MODEL]  # type: ignore[no-any-return]

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
    deadline = time.monotonic() + 3
    while stats()["running"]:
        assert time.monotonic() < deadline, "generation kept running after the client left"
        time.sleep(0.02)
    assert stats()["cancelled"] == before + 1
