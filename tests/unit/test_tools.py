"""Local tool calling's parts without a model: plans from requests, the conversation a
plain chat template can render, and the catcher between the decode loop and its events."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from genaiops.engines import tools
from genaiops.engines.base import (
    ChatMessage,
    Finished,
    GenerationRequest,
    SamplingParams,
    TextDelta,
    ToolCalls,
)
from genaiops.engines.logprobs import TokenLogprob
from genaiops.errors import InvalidRequest

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                            "parameters": {"type": "object"}}}  # fmt: skip
TIME = {"type": "function", "function": {"name": "get_time"}}


def request(**extra: Any) -> GenerationRequest:
    messages = [ChatMessage("user", "Weather in Lima?")]
    return GenerationRequest("r", "m", SamplingParams(), messages=messages, extra=extra)


def test_plans() -> None:
    assert tools.plan(request()) is None
    assert tools.plan(request(tools=[WEATHER], tool_choice="none")) is None
    auto = tools.plan(request(tools=[WEATHER, TIME]))
    assert auto is not None and auto.mode == "auto" and auto.names == ["get_weather", "get_time"]
    assert auto.schema()["anyOf"][1]["properties"]["name"] == {"const": "get_time"}
    choice = {"type": "function", "function": {"name": "get_time"}}
    named = tools.plan(request(tools=[WEATHER, TIME], tool_choice=choice))
    assert named is not None and named.mode == "required" and named.names == ["get_time"]
    assert named.schema()["properties"]["arguments"] == {"type": "object"}
    for extra, param in [
        ({"tools": [{"type": "retrieval"}]}, "tools.0"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),  # fmt: skip
        ({"tools": {"get_weather": {}}}, "tools"),
    ]:
        with pytest.raises(InvalidRequest) as err:
            tools.plan(request(**extra))
        assert err.value.param == param
    with pytest.raises(InvalidRequest):
        tools.plan(GenerationRequest("r", "m", SamplingParams(), prompt="x",
                                     extra={"tools": [WEATHER]}))  # fmt: skip


def test_the_lazy_grammar_triggers_on_an_answer_that_starts_a_call() -> None:
    """In "auto" the grammar holds the answer from its opening brace on, and never
    holds prose, braces inside it included."""
    started = re.match(tools.CALL_TRIGGER, ' \n{"name": "get_weather"')
    assert started is not None and started.group(1) == '{"name": "get_weather"'
    assert re.match(tools.CALL_TRIGGER, "Hola, te paso {esto}") is None


def test_conversation_renders_tool_turns_for_plain_templates() -> None:
    call = {"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'}}  # fmt: skip
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Weather in Lima?"),
        ChatMessage("assistant", "", None, {"tool_calls": [call]}),
        ChatMessage("tool", "18 °C", None, {"tool_call_id": "c1"}),
    ]
    plain = [ChatMessage("user", "hi")]
    assert tools.conversation(plain, None) is plain
    shown = tools.conversation(messages, tools.plan(request(tools=[WEATHER])))
    assert [m.role for m in shown] == ["system", "user", "assistant", "user"]
    assert shown[0].content.startswith("Be brief.\n\nYou can call these tools: ")
    assert json.loads(shown[2].content) == {"name": "get_weather", "arguments": {"city": "Lima"}}
    assert shown[3].content == "Result of get_weather: 18 °C"
    assert not any(m.uses_tools() for m in shown)
    # Without tools offered, the turns are still rendered and no instructions added.
    bare = tools.conversation(messages, None)
    assert bare[0].content == "Be brief." and bare[3].content == "Result of get_weather: 18 °C"


def catch(mode: str, pieces: list[str], reason: str = "stop") -> list[Any]:
    plan = tools.plan(request(tools=[WEATHER], tool_choice=mode))
    assert plan is not None
    out: list[Any] = []
    catcher = tools.CallCatcher(plan, out.append)
    entry = TokenLogprob("x", -0.5, b"x")
    for piece in pieces:
        catcher.emit(TextDelta(piece, (entry,)))
    catcher.emit(Finished(reason, 5, len(pieces)))  # type: ignore[arg-type]
    return out


def test_catcher_holds_calls_and_passes_prose() -> None:
    events = catch("required", ['{"name": "get_weather", ', '"arguments": {"city": "Lima"}}'])
    assert [type(e) for e in events] == [ToolCalls, Finished]
    [call] = events[0].calls
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Lima"}'}
    assert call["id"].startswith("call_") and events[1].reason == "tool_calls"
    assert events[1].completion_tokens == 2

    # Prose in "auto": held only until its first visible character, then as it comes.
    events = catch("auto", [" ", "Hola", ", Lima"])
    assert [e.text for e in events[:-1]] == [" ", "Hola", ", Lima"]
    assert all(e.logprobs for e in events[:-1]) and events[-1].reason == "stop"

    # A call cut short (max_tokens) is the text it is, with its finish reason.
    events = catch("auto", ['{"name": "get_wea'], "length")
    assert [e.text for e in events[:-1]] == ['{"name": "get_wea'] and events[-1].reason == "length"
    # An empty answer is just its end.
    assert [type(e) for e in catch("auto", [])] == [Finished]
