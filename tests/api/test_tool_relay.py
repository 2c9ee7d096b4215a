"""Tool calling and non-text content through a remote upstream, both ways.

The bundled models cannot call tools, so the upstream here is a small scripted
OpenAI-compatible server on a real socket: it records what the gateway sent and answers
with tool calls, as JSON and as an SSE stream whose arguments arrive in fragments. What is
under test is the gateway's relay (request fields forwarded untouched, calls put back
together, output guards applied to their arguments, OpenAI's response shapes), through the
official client.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.integration

ARGUMENTS = '{"city": "Lima", "notify": "ana.perez@ejemplo.com"}'
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


class Scripted(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Scripted.received.append(body)
        call = {"id": "call_1", "type": "function", "function": {"name": "get_weather"}}
        base = {"id": "up-1", "object": "chat.completion", "created": 1, "model": "up"}
        if "tools" not in body:
            self._text_without_usage(body, base)
            return
        if not body.get("stream"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [call | {"function": call["function"] | {"arguments": ARGUMENTS}}],
            }
            answer = base | {
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 42, "completion_tokens": 9, "total_tokens": 51},
            }
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        head = base | {"object": "chat.completion.chunk"}
        pieces = [ARGUMENTS[:9], ARGUMENTS[9:30], ARGUMENTS[30:]]
        deltas: list[dict[str, Any]] = [
            {"role": "assistant", "content": None},
            {"tool_calls": [{"index": 0, **call, "function": {"name": "get_weather"}}]},
            *({"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces),
        ]
        events = [head | {"choices": [{"index": 0, "delta": d}]} for d in deltas]
        events.append(
            head | {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
        )
        usage = {"prompt_tokens": 42, "completion_tokens": 9, "total_tokens": 51}
        events.append(head | {"choices": [], "usage": usage})
        stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        stream += b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(stream)))
        self.end_headers()
        self.wfile.write(stream)

    def _text_without_usage(self, body: dict[str, Any], base: dict[str, Any]) -> None:
        """An upstream that reports no token counts (ignores include_usage)."""
        if body.get("stream"):
            head = base | {"object": "chat.completion.chunk"}
            deltas = [{"role": "assistant", "content": "Hola"}, {"content": " mundo"}]
            events = [head | {"choices": [{"index": 0, "delta": d}]} for d in deltas]
            events.append(head | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
            data += b"data: [DONE]\n\n"
            kind = "text/event-stream"
        else:
            message = {"role": "assistant", "content": "Hola mundo, ¿qué tal?"}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            data = json.dumps(base | {"choices": [choice]}).encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[Any]]]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    tmp: Path = tmp_path_factory.mktemp("relay")
    config = f"""
bundled_models = ["smollm2-135m-instruct"]

[[models]]
name = "tool-model"
engine = "remote"
base_url = "http://127.0.0.1:{upstream.server_address[1]}/v1"
"""
    server = start_server(tmp, "relay", config)
    try:
        yield server, Scripted.received
    finally:
        stop_server(server)
        upstream.shutdown()
        upstream.server_close()


CONVERSATION: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is the weather where this photo was taken?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "locate", "arguments": '{"photo": 1}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_0", "content": "Lima, Peru"},
]


def test_tool_calls_are_relayed_both_ways(relay: tuple[Server, list[Any]]) -> None:
    server, received = relay
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)
    reply = client.chat.completions.create(
        model="tool-model",
        messages=CONVERSATION,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="auto",
    )
    sent = received[-1]
    # The upstream got the tools, the earlier call, its result and the image, as sent,
    # and no sampling value the caller left out.
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"
    assert sent["messages"][0]["content"][1] == CONVERSATION[0]["content"][1]
    assert sent["messages"][1]["tool_calls"] == CONVERSATION[1]["tool_calls"]
    assert sent["messages"][1]["content"] is None
    assert sent["messages"][2]["tool_call_id"] == "call_0"
    assert "temperature" not in sent and "top_p" not in sent
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id == "call_1" and call.function.name == "get_weather"  # type: ignore[union-attr]
    arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
    # The output policy read the arguments: the e-mail address the model produced is masked.
    assert arguments == {"city": "Lima", "notify": "<EMAIL_1>"}
    assert reply.usage is not None and reply.usage.prompt_tokens == 42
    client.close()


def test_streamed_tool_calls_arrive_whole(relay: tuple[Server, list[Any]]) -> None:
    server, received = relay
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="tool-model",
            messages=CONVERSATION,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert received[-1]["stream"] is True
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [call for d in deltas for call in (d.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].id == "call_1"
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments or "") == {
        "city": "Lima",
        "notify": "<EMAIL_1>",
    }
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9
    client.close()


def test_local_models_refuse_images(relay: tuple[Server, list[Any]]) -> None:
    server, _ = relay
    # Tool turns they render (tests/api/test_local_tools.py); an image they cannot read.
    for messages, index in ((CONVERSATION[:1], 0), ([*CONVERSATION[1:], CONVERSATION[0]], 2)):
        r = httpx.post(
            server.url + "/v1/chat/completions",
            json={"model": "smollm2-135m-instruct", "messages": messages, "max_tokens": 2},
            headers=server.headers,
            timeout=60,
        )
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["param"] == f"messages.{index}" and "text only" in error["message"]
    # A malformed text part is still a 400 about the part, not taken for media.
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={
            "model": "tool-model",
            "messages": [{"role": "user", "content": [{"type": "text"}]}],
        },
        headers=server.headers,
        timeout=60,
    )
    assert r.status_code == 400


def test_an_upstream_without_token_counts_is_charged_estimates(
    relay: tuple[Server, list[Any]],
) -> None:
    server, _ = relay
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)
    question = "¿Cómo estás hoy? Cuéntame algo breve."  # 37 characters: 10 tokens
    whole = client.chat.completions.create(
        model="tool-model", messages=[{"role": "user", "content": question}]
    )
    assert whole.usage is not None
    assert whole.usage.prompt_tokens == 10 and whole.usage.completion_tokens == 6
    chunks = list(
        client.chat.completions.create(
            model="tool-model",
            messages=[{"role": "user", "content": question}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens == 10
    assert usage.completion_tokens == 3  # "Hola mundo": 10 characters, two chunks
    client.close()


# The same conversation as Responses input items: an image part, the model's earlier
# call and its result.
RESPONSES_INPUT: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is the weather where this photo was taken?"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
        ],
    },
    {"type": "function_call", "call_id": "call_0", "name": "locate", "arguments": '{"photo": 1}'},
    {"type": "function_call_output", "call_id": "call_0", "output": "Lima, Peru"},
]
RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
                    "parameters": TOOLS[0]["function"]["parameters"]}]  # fmt: skip


def test_responses_relay_tools_and_calls(relay: tuple[Server, list[Any]]) -> None:
    """The Responses API in front of an upstream that calls tools: function tools, the
    earlier call and its result reach it in chat's shapes; its call comes back as a
    ``function_call`` output item, with the output guards applied to the arguments."""
    server, received = relay
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)
    r = client.responses.create(
        model="tool-model", input=RESPONSES_INPUT, tools=RESPONSES_TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "name": "get_weather"}, instructions="Be brief.",
    )  # fmt: skip
    sent = received[-1]
    assert sent["tools"] == TOOLS
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    system, user, assistant, tool = sent["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert user["content"][1] == CONVERSATION[0]["content"][1]  # the image, as chat sends it
    assert assistant["tool_calls"] == CONVERSATION[1]["tool_calls"]
    assert assistant["content"] is None
    assert tool == {"role": "tool", "tool_call_id": "call_0", "content": "Lima, Peru"}
    [call] = r.output
    assert call.type == "function_call" and call.call_id == "call_1"
    assert call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "Lima", "notify": "<EMAIL_1>"}
    assert r.status == "completed" and r.usage is not None and r.usage.input_tokens == 42

    with client.responses.stream(model="tool-model", input=RESPONSES_INPUT,
                                 tools=RESPONSES_TOOLS) as stream:  # type: ignore[arg-type]  # fmt: skip
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert received[-1]["stream"] is True
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done",
                     "response.completed"]  # fmt: skip
    [streamed] = final.output
    assert streamed.type == "function_call" and streamed.call_id == "call_1"
    assert json.loads(streamed.arguments) == {"city": "Lima", "notify": "<EMAIL_1>"}
    client.close()
