"""Tool calling on the bundled local model, through the official client: calls held to
the tools' parameter schemas by the grammar, streamed whole, earlier calls and their
results rendered into the conversation, and the Responses API on the same path."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time in a city",
                                      "parameters": {"type": "object",
                                                     "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}},
]  # fmt: skip
ASK = [{"role": "user", "content": "What's the weather like in Lima right now?"}]


def _call(client: openai.OpenAI, **kw: Any) -> Any:
    kw = {"messages": ASK, "max_tokens": 60} | kw
    return client.chat.completions.create(model=MODEL, tools=TOOLS, temperature=0, **kw)  # type: ignore[arg-type]


def test_required_and_named_calls_follow_the_parameters(client: openai.OpenAI) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    for choice, names in (("required", {"get_weather", "get_time"}), (named, {"get_time"})):
        r = _call(client, tool_choice=choice)
        message = r.choices[0].message
        assert r.choices[0].finish_reason == "tool_calls" and message.content is None
        [call] = message.tool_calls
        assert call.id.startswith("call_") and call.type == "function"
        assert call.function.name in names
        schema = next(t["function"]["parameters"] for t in TOOLS
                      if t["function"]["name"] == call.function.name)  # fmt: skip
        jsonschema.validate(json.loads(call.function.arguments), schema)
        assert r.usage.completion_tokens > 0

    # Streamed: the call arrives whole, in one delta, then the finish reason.
    chunks = list(_call(client, tool_choice="required", stream=True))
    calls = [c for ch in chunks if ch.choices for c in ch.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"
    assert not any(ch.choices[0].delta.content for ch in chunks if ch.choices)


def test_tool_turns_are_rendered_and_choice_none_answers_in_prose(
    server: Server, client: openai.OpenAI
) -> None:
    turns = [*ASK,
             {"role": "assistant", "content": None, "tool_calls": [
                 {"id": "call_7", "type": "function",
                  "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'}}]},
             {"role": "tool", "tool_call_id": "call_7", "content": "18 °C, cloudy"}]  # fmt: skip
    r = _call(client, messages=turns, tool_choice="none", max_tokens=30)
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    # The model read the earlier call and the result, said whose it was.
    body = {"model": MODEL, "messages": turns, "return_token_strs": True}
    shown = httpx.post(server.url + "/tokenize", headers=server.headers, json=body, timeout=60)
    text = "".join(shown.json()["token_strs"])
    assert '{"name": "get_weather", "arguments": {"city": "Lima"}}' in text
    assert "Result of get_weather: 18 °C, cloudy" in text
    assert shown.json()["count"] == r.usage.prompt_tokens  # type: ignore[union-attr]
    # With tools offered, the model is told how to call them: a longer prompt.
    offered = _call(client, messages=turns, tool_choice="auto", max_tokens=1)
    assert offered.usage.prompt_tokens > r.usage.prompt_tokens  # type: ignore[union-attr]
    counted = httpx.post(server.url + "/tokenize", headers=server.headers, timeout=60,
                         json={"model": MODEL, "messages": turns, "tools": TOOLS})  # fmt: skip
    assert counted.json()["count"] == offered.usage.prompt_tokens  # type: ignore[union-attr]


def test_auto_lets_the_model_answer_in_prose(client: openai.OpenAI) -> None:
    """ "auto" leaves the choice to the model: this one answers the greeting in prose."""
    r = _call(client, messages=[{"role": "user", "content": "Hi! How are you?"}], seed=1,
              max_tokens=20)  # fmt: skip
    assert r.choices[0].message.tool_calls is None
    text = r.choices[0].message.content
    assert text and not text.lstrip().startswith("{")


def test_auto_holds_an_answer_that_starts_a_call_to_the_schema(
    server: Server, client: openai.OpenAI
) -> None:
    """When the model starts its answer with a brace, the grammar holds it to a call:
    here the brace is forced with logit_bias, and what follows is a valid call, where the
    same bias without tools only repeats the brace."""
    brace = httpx.post(server.url + "/tokenize", headers=server.headers, timeout=60,
                       json={"model": MODEL, "prompt": "{"}).json()["tokens"]  # fmt: skip
    unit = {"type": "function", "function": {"name": "set_unit", "parameters": {
        "type": "object", "properties": {"unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["unit"], "additionalProperties": False}}}  # fmt: skip
    ask = [{"role": "user", "content": "Use Fahrenheit, please."}]
    bias = {str(brace[0]): 100}
    r = client.chat.completions.create(model=MODEL, messages=ask, tools=[unit, *TOOLS],  # type: ignore[arg-type, list-item]
                                       temperature=0, max_tokens=60, logit_bias=bias)  # fmt: skip
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    schema = next(t["function"]["parameters"] for t in [unit, *TOOLS]
                  if t["function"]["name"] == call.function.name)  # type: ignore[union-attr]  # fmt: skip
    jsonschema.validate(json.loads(call.function.arguments), schema)  # type: ignore[union-attr]
    plain = client.chat.completions.create(model=MODEL, messages=ask, temperature=0,  # type: ignore[arg-type]
                                           max_tokens=8, logit_bias=bias)  # fmt: skip
    assert plain.choices[0].message.content == "{" * 8


def test_responses_api_calls_local_tools(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": t["function"]["name"],
              "parameters": t["function"]["parameters"]} for t in TOOLS]  # fmt: skip
    r = client.responses.create(
        model=MODEL, input=ASK[0]["content"], tools=tools,  # type: ignore[arg-type]
        tool_choice="required", temperature=0, max_output_tokens=60,
    )  # fmt: skip
    [call] = r.output
    assert call.type == "function_call" and call.name in {"get_weather", "get_time"}
    json.loads(call.arguments)
    # The result goes back as input; the model answers (tool_choice "none": in prose).
    follow = client.responses.create(
        model=MODEL, tools=tools, tool_choice="none", temperature=0, max_output_tokens=20,  # type: ignore[arg-type]
        input=[{"role": "user", "content": ASK[0]["content"]},
               {"type": "function_call", "call_id": call.call_id, "name": call.name,
                "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id, "output": "18 °C"}],
    )  # fmt: skip
    assert follow.output[0].type == "message" and follow.output_text


def test_what_local_tools_refuse(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        _call(client, tool_choice="required", response_format={"type": "json_object"})
    assert err.value.param == "response_format"
    with pytest.raises(openai.BadRequestError) as err:
        _call(client, tool_choice={"type": "function", "function": {"name": "nope"}})
    assert err.value.param == "tool_choice"
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL, prompt="x", max_tokens=1,
                                  extra_body={"tools": TOOLS})  # fmt: skip
    assert err.value.param == "tools"
