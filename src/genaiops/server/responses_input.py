"""A Responses API request as the GenerationRequest a chat completion would make (see
server/responses_wire.py for what is taken and what is refused)."""

from __future__ import annotations

import uuid
from typing import Any

from genaiops.engines.base import ChatMessage, GenerationRequest, ResponseFormat, SamplingParams
from genaiops.errors import InvalidRequest
from genaiops.server.responses_wire import (
    LOGPROBS_INCLUDE,
    InputItem,
    InputPart,
    ResponsesRequest,
)

# Set (and not null, false or empty), these need state this gateway does not keep.
_STATEFUL = ("previous_response_id", "conversation", "background", "prompt")
_TEXT_PARTS = ("input_text", "output_text", "text")


def _refuse_stateful(body: ResponsesRequest) -> None:
    extra = body.model_extra or {}
    for name in _STATEFUL:
        if getattr(body, name, None) or extra.get(name):
            raise InvalidRequest(
                f"{name} is not supported: this gateway keeps no responses or "
                "conversations; send the whole conversation in 'input'",
                param=name,
            )
    unknown = [v for v in body.include or () if v != LOGPROBS_INCLUDE]
    if unknown:
        raise InvalidRequest(
            f"include value {unknown[0]!r} is not supported (only {LOGPROBS_INCLUDE!r})",
            param="include",
        )


def _tools(body: ResponsesRequest) -> dict[str, Any]:
    """Function tools and the tool choice, in chat's shapes."""
    if not body.tools:
        return {}
    tools = []
    for i, tool in enumerate(body.tools):
        if tool.type != "function" or tool.name is None:
            raise InvalidRequest(
                f"tool {i} is of type {tool.type!r}; this gateway relays function tools "
                "(with a name) and runs no tools of its own",
                param=f"tools.{i}",
            )
        function: dict[str, Any] = {"name": tool.name}
        for field in ("description", "parameters", "strict"):
            if getattr(tool, field) is not None:
                function[field] = getattr(tool, field)
        tools.append({"type": "function", "function": function})
    extra: dict[str, Any] = {"tools": tools}
    choice = body.tool_choice
    if isinstance(choice, str):
        extra["tool_choice"] = choice
    elif isinstance(choice, dict):
        if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
            raise InvalidRequest(
                "tool_choice is 'auto', 'none', 'required' or a function "
                '({"type": "function", "name": ...})',
                param="tool_choice",
            )
        extra["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    if body.parallel_tool_calls is not None:
        extra["parallel_tool_calls"] = body.parallel_tool_calls
    return extra


def _parts(parts: list[InputPart], where: str) -> tuple[str, tuple[dict[str, Any], ...] | None]:
    """The text of a message's parts, and its parts in chat's shapes when an image is
    among them (for models that read images; text models refuse them)."""
    texts: list[str] = []
    wire: list[dict[str, Any]] = []
    media = False
    for j, part in enumerate(parts):
        if part.type in _TEXT_PARTS and part.text is not None:
            texts.append(part.text)
            wire.append({"type": "text", "text": part.text})
        elif part.type == "input_image" and part.image_url:
            media = True
            image = {"url": part.image_url} | ({"detail": part.detail} if part.detail else {})
            wire.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequest(
                f"a part of type {part.type!r} cannot be read here: text parts (input_text, "
                "output_text) and images by URL (input_image with image_url) can",
                param=f"{where}.{j}",
            )
    return "".join(texts), tuple(wire) if media else None


def _call(item: InputItem, i: int) -> dict[str, Any]:
    if item.call_id is None or item.name is None:
        raise InvalidRequest(
            f"input item {i} (function_call) needs a call_id and a name", param=f"input.{i}"
        )
    function = {"name": item.name, "arguments": item.arguments or ""}
    return {"id": item.call_id, "type": "function", "function": function}


def _messages(body: ResponsesRequest) -> list[ChatMessage]:
    messages = [ChatMessage("system", body.instructions)] if body.instructions else []
    if isinstance(body.input, str):
        return [*messages, ChatMessage("user", body.input)]
    if not body.input:
        raise InvalidRequest("input is empty", param="input")
    for i, item in enumerate(body.input):
        if item.type == "function_call":
            call = _call(item, i)
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and i > 0:
                # Calls made in one turn belong to one assistant message.
                calls = [*last.extra.get("tool_calls", []), call]
                messages[-1] = ChatMessage("assistant", last.content, last.name,
                                           last.extra | {"tool_calls": calls})  # fmt: skip
            else:
                messages.append(ChatMessage("assistant", "", None, {"tool_calls": [call]}))
        elif item.type == "function_call_output":
            if item.call_id is None:
                raise InvalidRequest(
                    f"input item {i} (function_call_output) needs a call_id", param=f"input.{i}"
                )
            output = item.output or ""
            text = output if isinstance(output, str) else _parts(output, f"input.{i}.output")[0]
            messages.append(ChatMessage("tool", text, None, {"tool_call_id": item.call_id}))
        elif item.type == "message" and item.role is not None:
            if item.content is None or isinstance(item.content, str):
                messages.append(ChatMessage(item.role, item.content or ""))
            else:
                text, parts = _parts(item.content, f"input.{i}.content")
                messages.append(ChatMessage(item.role, text, None, {}, parts))
        else:
            raise InvalidRequest(
                f"input item {i} is of type {item.type!r}; messages (a role and their "
                "content), function_call and function_call_output items are supported",
                param=f"input.{i}",
            )
    return messages


def responses_request(body: ResponsesRequest) -> GenerationRequest:
    _refuse_stateful(body)
    fmt = ResponseFormat()
    if body.text is not None and body.text.format.type != "text":
        spec = body.text.format
        if spec.type == "json_schema" and spec.schema_ is None:
            raise InvalidRequest(
                "text.format of type json_schema needs a 'schema'", param="text.format.schema"
            )
        fmt = ResponseFormat(spec.type, spec.schema_, spec.name)
    wanted = LOGPROBS_INCLUDE in (body.include or ()) or body.top_logprobs is not None
    explicit = {"temperature", "top_p"} & body.model_fields_set
    if body.max_output_tokens is not None:
        explicit.add("max_tokens")
    params = SamplingParams(
        max_tokens=body.max_output_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        response_format=fmt,
        logprobs=(body.top_logprobs or 0) if wanted else None,
        explicit=frozenset(explicit),
    )
    extra: dict[str, Any] = _tools(body)
    if "rag" in (body.model_extra or {}):
        extra["rag"] = (body.model_extra or {})["rag"]
    if body.user is not None:
        extra["user"] = body.user
    return GenerationRequest(
        request_id="resp_" + uuid.uuid4().hex,
        model=body.model,
        params=params,
        messages=_messages(body),
        stream=body.stream,
        extra=extra,
    )
