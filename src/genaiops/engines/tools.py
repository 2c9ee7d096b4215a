"""Tool calling for local models (the llama.cpp engine), by constrained decoding.

Chat templates of small local models have no place for tools, so the conversation is
rewritten into one they have: the tools are described in the system message, with the
one way to call them (a JSON object ``{"name": ..., "arguments": {...}}`` as the whole
answer); earlier calls become the assistant's answers in that form, and tool results
user messages that say whose result they are. The answer is then held to it by a
grammar built from the tools' parameter schemas:

* ``tool_choice`` "required" or a named function: the answer is a call (of that
  function), its arguments valid against the function's ``parameters``;
* "auto" (the default): a call or prose; the model's first visible character decides.
  The grammar is llama.cpp's lazy kind: it holds the answer only once it begins with
  ``{`` (``CALL_TRIGGER``), so prose is sampled as freely and as fast as without tools,
  and streams as usual;
* "none": the tools are not shown and the answer is prose.

One call per answer (``parallel_tool_calls`` permits more; it does not require them).
A call goes out as ToolCalls (OpenAI's shape, an id of its own) with finish reason
``tool_calls``; the output guards read its arguments as they read a remote model's.
How well a model picks a tool and fills its arguments is the model's: a 135M model
picks poorly, a larger GGUF does better. The grammar guarantees only the shape.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from genaiops.engines.base import (
    ChatMessage,
    Finished,
    GenerationRequest,
    TextDelta,
    ToolCalls,
)
from genaiops.errors import InvalidRequest

Mode = Literal["auto", "required"]

# In "auto", the answer text that starts a call (the grammar holds it from its group on).
CALL_TRIGGER = r"^\s*(\{[\s\S]*)"


@dataclass(frozen=True)
class ToolPlan:
    mode: Mode
    tools: tuple[dict[str, Any], ...]  # each {"name", "description"?, "parameters"?}

    @property
    def names(self) -> list[str]:
        return [t["name"] for t in self.tools]

    def schema(self) -> dict[str, Any]:
        """The JSON schema of one call of any of the tools."""
        calls = [
            {
                "type": "object",
                "properties": {
                    "name": {"const": t["name"]},
                    "arguments": t.get("parameters") or {"type": "object"},
                },
                "required": ["name", "arguments"],
            }
            for t in self.tools
        ]
        return calls[0] if len(calls) == 1 else {"anyOf": calls}

    def instructions(self) -> str:
        listed = json.dumps(list(self.tools), ensure_ascii=False)
        must = (
            "Answer with a tool call only."
            if self.mode == "required"
            else "Call a tool when it helps; otherwise answer normally."
        )
        return (
            f"You can call these tools: {listed}\n"
            'To call one, answer with only a JSON object: {"name": <tool name>, '
            f'"arguments": <its arguments>}}. {must}'
        )


def plan(request: GenerationRequest) -> ToolPlan | None:
    """The request's tools and how the answer may use them; None when it has none (or
    ``tool_choice`` is "none"). Malformed tools or choices are refused (400)."""
    tools = request.extra.get("tools")
    if not tools:
        return None
    if request.messages is None:
        raise InvalidRequest("tools are for chat requests (/v1/chat/completions)", param="tools")
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list of function tools", param="tools")
    functions = [_function(tool, i) for i, tool in enumerate(tools)]
    choice = request.extra.get("tool_choice", "auto")
    if choice == "none":
        return None
    if choice in ("auto", "required"):
        return ToolPlan(choice, tuple(functions))
    named = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    chosen = [f for f in functions if f["name"] == named]
    if not chosen:
        raise InvalidRequest(
            "tool_choice is 'none', 'auto', 'required' or one of the tools "
            '({"type": "function", "function": {"name": ...}})',
            param="tool_choice",
        )
    return ToolPlan("required", tuple(chosen))


def _function(tool: Any, i: int) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if tool.get("type") != "function" or not isinstance(name, str) or not name:
        raise InvalidRequest(f"tool {i} is not a function tool with a name", param=f"tools.{i}")
    assert isinstance(function, dict)
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest(f"tool {i}'s parameters must be a JSON schema", param=f"tools.{i}")
    out: dict[str, Any] = {"name": name}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    if parameters is not None:
        out["parameters"] = parameters
    return out


def conversation(messages: list[ChatMessage], tools: ToolPlan | None) -> list[ChatMessage]:
    """The messages as a chat template without tools can render them (see the module
    docstring). Without tools or tool turns, the messages themselves."""
    turns = any(m.extra.get("tool_calls") or m.role == "tool" for m in messages)
    if tools is None and not turns:
        return messages
    names: dict[str, str] = {}
    out: list[ChatMessage] = []
    for m in messages:
        calls = m.extra.get("tool_calls") or []
        if m.role == "assistant" and calls:
            said = [_said(call, names) for call in calls]
            out.append(ChatMessage("assistant", "\n".join(filter(None, [m.content, *said]))))
        elif m.role == "tool":
            whose = names.get(str(m.extra.get("tool_call_id")), "a tool")
            out.append(ChatMessage("user", f"Result of {whose}: {m.content}"))
        else:
            out.append(ChatMessage(m.role, m.content, m.name))
    if tools is not None:
        if out and out[0].role in ("system", "developer"):
            out[0] = ChatMessage("system", f"{out[0].content}\n\n{tools.instructions()}")
        else:
            out.insert(0, ChatMessage("system", tools.instructions()))
    return out


def _said(call: Any, names: dict[str, str]) -> str:
    """An earlier call, as the model would have written it."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return ""
    name = str(function.get("name") or "")
    names[str(call.get("id"))] = name
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except (TypeError, ValueError):
        arguments = function.get("arguments")
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def parse(text: str, tools: ToolPlan) -> dict[str, Any] | None:
    """The call ``text`` makes, in OpenAI's shape; None when it is not a whole call (an
    answer cut by max_tokens)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in tools.names:
        return None
    arguments = json.dumps(value.get("arguments", {}), ensure_ascii=False)
    return {
        "id": "call_" + uuid.uuid4().hex[:24],
        "type": "function",
        "function": {"name": value["name"], "arguments": arguments},
    }


class CallCatcher:
    """Between a decode loop and its ``emit``: an answer that is a call is held and goes
    out as ToolCalls, finish reason ``tool_calls``; prose goes out as it comes (in
    "auto", once its first visible character shows it is prose)."""

    def __init__(self, tools: ToolPlan, emit: Callable[[Any], None]):
        self.tools, self._emit = tools, emit
        self._held: list[TextDelta] = []
        self._calling: bool | None = True if tools.mode == "required" else None

    def emit(self, event: Any) -> None:
        """Takes what the decode loop emits (events, or the error that ended it)."""
        if isinstance(event, TextDelta):
            self._text(event)
        elif isinstance(event, Finished):
            self._finish(event)
        else:
            self._emit(event)

    def _text(self, delta: TextDelta) -> None:
        if self._calling is False:
            self._emit(delta)
            return
        self._held.append(delta)
        if self._calling is None:
            begun = "".join(d.text for d in self._held).lstrip()
            if begun:
                self._calling = begun.startswith("{")
                if not self._calling:
                    self._release()

    def _release(self) -> None:
        for delta in self._held:
            self._emit(delta)
        self._held.clear()

    def _finish(self, finished: Finished) -> None:
        if self._calling:
            call = parse("".join(d.text for d in self._held), self.tools)
            if call is not None:
                self._held.clear()
                self._emit(ToolCalls((call,)))
                finished = Finished("tool_calls", finished.prompt_tokens,
                                    finished.completion_tokens)  # fmt: skip
        # A call cut short (max_tokens, a stop sequence) goes out as the text it is.
        self._release()
        self._emit(finished)
