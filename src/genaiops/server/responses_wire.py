"""Wire schema of OpenAI's Responses API (``POST /v1/responses``) and its translation to
the GenerationRequest a chat completion would make.

Input is a string or a list of items: messages (``input_text`` / ``output_text`` parts,
and ``input_image`` for models that read images), the model's earlier function calls
and their outputs. ``instructions`` become the system message; function tools, tool
choice and the conversation's calls become chat's ``tools``, ``tool_choice``, assistant
``tool_calls`` and ``tool`` messages, which remote upstreams receive (local models
refuse them with a 400, as on chat). Fields that describe bookkeeping a stateless
gateway does not keep (``store``, ``metadata``, ``truncation``, ``service_tier``...) are
accepted, so clients that always send them work; those that need state this gateway
does not keep (``previous_response_id``, ``conversation``, ``background``) or tools it
does not run (web or file search...) are refused with a 400 naming them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from genaiops.engines.logprobs import MAX_TOP_CHAT

INT64 = 2**63 - 1
# ``include`` values honoured: the output text's log probabilities.
LOGPROBS_INCLUDE = "message.output_text.logprobs"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class InputPart(_Open):
    type: str = Field(min_length=1, max_length=64)
    text: str | None = None
    image_url: str | None = None
    detail: str | None = None


class InputItem(_Open):
    """A message (``type`` "message", or left out), a function call the model made
    (``function_call``) or its result (``function_call_output``)."""

    type: str = "message"
    role: Literal["system", "developer", "user", "assistant"] | None = None
    content: str | list[InputPart] | None = None
    call_id: str | None = Field(default=None, min_length=1, max_length=256)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    arguments: str | None = None
    output: str | list[InputPart] | None = None


class Tool(_Open):
    type: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = Field(default=None, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextOptions(_Open):
    format: TextFormat = Field(default_factory=TextFormat)


class ResponsesRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[InputItem]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    # Not in OpenAI's Responses API; the gateway's own extension, as on chat.
    seed: int | None = Field(default=None, ge=-INT64 - 1, le=INT64)
    stream: bool = False
    text: TextOptions | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_CHAT)
    include: list[str] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    store: bool | None = None
    parallel_tool_calls: bool | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[Tool] | None = None
    previous_response_id: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
