"""Wire schema of OpenAI's Responses API (``POST /v1/responses``), text in and text out.

Input is a string or a list of messages (``input_text`` / ``output_text`` parts); the
fields that change the answer are declared and strict about JSON types. Fields that
describe bookkeeping a stateless gateway does not keep (``store``, ``metadata``,
``include`` of nothing, ``truncation``, ``service_tier``...) are accepted, so clients
that always send them work. Those that would need state or tools this endpoint does not
offer (``previous_response_id``, ``conversation``, ``background``, ``tools``) are
refused with a 400 naming them rather than ignored.
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


class InputItem(_Open):
    """A message of the conversation (``type`` "message", or left out)."""

    type: str = "message"
    role: Literal["system", "developer", "user", "assistant"] | None = None
    content: str | list[InputPart] | None = None


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
    tool_choice: Any = None
    tools: list[Any] | None = None
    previous_response_id: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
