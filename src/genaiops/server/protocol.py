"""Wire schemas for the OpenAI-compatible endpoints and /generate.

Requests accept unknown fields (clients send many) and keep them in ``model_extra``; the
gateway forwards those to remote upstreams and refuses the few that local engines cannot
honour (tools, media parts) with a clear 400 rather than ignoring them silently.
Declared fields are strict about JSON types, as OpenAI is: ``"12"`` is not a number and
``"yes"`` not a boolean (an integer is still a valid number).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from genaiops.engines.base import ChatMessage
from genaiops.engines.logprobs import MAX_TOP_CHAT, MAX_TOP_COMPLETION

INT64 = 2**63 - 1
# OpenAI's limit on how many tokens one request's logit_bias may name.
MAX_LOGIT_BIAS = 300


# Request bodies: no coercion between JSON types.
_STRICT = ConfigDict(strict=True)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class TextPart(BaseModel):
    model_config = _STRICT

    type: Literal["text"]
    text: str


class OtherPart(_Open):
    """A non-text content part (``image_url``, ``input_audio``, ``file``...): relayed to
    remote upstreams as sent; local text models refuse it."""

    type: str = Field(min_length=1, max_length=64)

    @field_validator("type")
    @classmethod
    def _not_text(cls, value: str) -> str:
        if value == "text":
            raise ValueError("a text part needs a 'text' string")
        return value


class ChatMessageIn(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | OtherPart] | None = None
    name: str | None = Field(default=None, max_length=256)

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def message(self) -> ChatMessage:
        """The engine-side message: text joined, other wire fields and parts kept."""
        return ChatMessage(
            self.role, self.text(), self.name, dict(self.model_extra or {}), self.media_parts()
        )

    def media_parts(self) -> tuple[dict[str, Any], ...] | None:
        """Every part, as sent, when any of them is not text (None otherwise)."""
        if not isinstance(self.content, list) or all(isinstance(p, TextPart) for p in self.content):
            return None
        return tuple(p.model_dump(exclude_unset=True) for p in self.content)


class StreamOptions(BaseModel):
    model_config = _STRICT

    include_usage: bool = False


class JSONSchemaSpec(_Open):
    name: str = Field(default="response", max_length=64)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormatIn(BaseModel):
    model_config = _STRICT

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaSpec | None = None


StopField = Annotated[
    str | Annotated[list[str], Field(max_length=4)] | None,
    Field(description="Up to 4 sequences where generation stops; not included in the output."),
]


class SamplingIn(_Open):
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: StopField = None
    seed: int | None = Field(default=None, ge=-INT64 - 1, le=INT64)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Token id (as a decimal string, since JSON keys are strings) -> bias, -100 to 100.
    logit_bias: dict[str, float] | None = None
    # vLLM-compatible extension: keep generating past end-of-sequence (benchmarks).
    ignore_eos: bool = False

    @field_validator("logit_bias")
    @classmethod
    def _token_biases(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if len(value) > MAX_LOGIT_BIAS:
            raise ValueError(f"at most {MAX_LOGIT_BIAS} tokens may be biased")
        for key, bias in value.items():
            if not key.isascii() or not key.isdigit() or len(key) > 10:
                raise ValueError(f"keys are token ids (non-negative integers), not {key!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"the bias of token {key} is {bias}; it must be from -100 to 100")
        return value

    def token_biases(self) -> dict[int, float]:
        return {int(k): float(v) for k, v in (self.logit_bias or {}).items()}

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(SamplingIn):
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormatIn | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_CHAT)


class CompletionRequest(SamplingIn):
    model: str = Field(min_length=1, max_length=256)
    # OpenAI's (and vLLM's) default for this endpoint: a prompt with no limit would hold
    # the model's one thread until the context window is full.
    max_tokens: int | None = Field(default=16, ge=1)
    prompt: str | list[str]
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_COMPLETION)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class TokenizeRequest(BaseModel):
    """vLLM's /tokenize: a completion prompt or a chat conversation, in the model's ids."""

    model_config = ConfigDict(extra="forbid", strict=True)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    prompt: str | None = None
    messages: list[ChatMessageIn] | None = Field(default=None, min_length=1)
    # As a chat request would offer them: a local model is told how to call them.
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    return_token_strs: bool = False


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int | None
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    tokens: list[Annotated[int, Field(ge=0, le=INT64)]] = Field(max_length=1_000_000)


class DetokenizeResponse(BaseModel):
    prompt: str


class GenerateRequest(BaseModel):
    """The simple endpoint: a prompt in, text and token counts out."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1)
    model: str | None = Field(default=None, max_length=256)
    system: str | None = None
    mode: Literal["auto", "chat", "completion"] = Field(
        default="auto",
        description="auto: chat template when the model has one, plain completion otherwise",
    )
    max_tokens: int | None = Field(default=256, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: StopField = None
    seed: int | None = Field(default=None, ge=-INT64 - 1, le=INT64)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerateResponse(BaseModel):
    id: str
    object: Literal["generation"] = "generation"
    created: int
    model: str
    text: str
    finish_reason: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    context_length: int | None = None
    capabilities: dict[str, bool] = Field(default_factory=dict)
    description: str = ""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- admin -----------------------------------------------------------------------------------


class LimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    budget_tokens: int | None = Field(default=None, gt=0)
    budget_period: Literal["day", "month"] = "month"


class KeyCreate(LimitsIn):
    tenant: str | None = Field(default=None, max_length=64)
    role: Literal["admin", "operator", "user"] = "user"
    name: str = Field(default="", max_length=128)
    models: list[str] | None = Field(default=None, max_length=1000)
    # A duration such as "30d", "12h", "90m".
    expires: str | None = Field(default=None, max_length=16)


class KeyOut(BaseModel):
    id: str
    object: str = "api_key"
    tenant: str
    name: str
    role: str
    status: str
    rpm: int | None
    tpm: int | None
    budget_tokens: int | None
    budget_period: str
    models: list[str] | None
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    created_by: str | None
    rotated_from: str | None
    redacted_key: str
    # Only in the answer to create and rotate: the secret, shown once.
    key: str | None = None


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyOut]


class TenantOut(BaseModel):
    name: str
    object: str = "tenant"
    rpm: int | None
    tpm: int | None
    budget_tokens: int | None
    budget_period: str


class TenantList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TenantOut]


# -- retrieval -------------------------------------------------------------------------------


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=64)
    embedder: str | None = Field(default=None, max_length=64)
    chunk_tokens: int | None = Field(default=None, ge=16, le=8192)
    chunk_overlap: int | None = Field(default=None, ge=0, le=4096)
    language: Literal["es", "pt", "en"] | None = None
    description: str = Field(default="", max_length=1000)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(min_length=1, max_length=8000)
    top_k: int = Field(default=5, ge=1, le=100)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    filters: dict[str, Any] | None = None


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    question: str = Field(min_length=1, max_length=8000)
    model: str | None = None
    top_k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    filters: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool = False


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    input: str | list[str] = Field(description="Text or texts (token arrays not supported).")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(i, int) or (isinstance(i, list) and i) for i in items):
            raise ValueError(
                "token arrays are not accepted: the embedders read text with their own "
                "tokenizers, so send the text itself (LangChain's OpenAIEmbeddings sends "
                "token arrays unless check_embedding_ctx_length=False)"
            )
        return value

    @field_validator("input")
    @classmethod
    def _inputs(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items or len(items) > 2048:
            raise ValueError("input must hold between 1 and 2048 texts")
        if any(not item for item in items):
            raise ValueError("input texts must not be empty")
        return value


# -- guardrails ------------------------------------------------------------------------------


class GuardrailsCheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    input: str = Field(description="The text to check.")
    guards: list[str] | None = Field(default=None, max_length=32)
    stage: Literal["input", "context", "output"] = "input"


class PolicyScope(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # Exactly one; none means the caller's own tenant.
    tenant: str | None = Field(default=None, max_length=64)
    key_id: str | None = Field(default=None, max_length=32)
    model: str | None = Field(default=None, max_length=128)


class PolicyUpdate(PolicyScope):
    stage: Literal["input", "context", "output"]
    policies: dict[str, Any] = Field(description="guard name -> {enabled, action, threshold}")


class Hyperparameters(BaseModel):
    """OpenAI's names where they exist (n_epochs, batch_size), LoRA's for the rest."""

    model_config = ConfigDict(extra="forbid", strict=True)

    n_epochs: int | Literal["auto"] = "auto"
    batch_size: int | Literal["auto"] = "auto"
    learning_rate: float | None = None
    learning_rate_multiplier: float | Literal["auto"] | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    gradient_accumulation_steps: int | None = None
    max_length: int | None = None
    target_modules: list[str] | None = None
    dtype: Literal["bf16", "fp32"] | None = None
    checkpoint_every: int | None = None


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class FineTuningMethod(BaseModel):
    """OpenAI's ``method``. Only ``supervised`` (LoRA) is implemented; the others are
    refused with a 400 naming ``method``."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethod | None = None


# OpenAI's metadata: up to 16 pairs, keys up to 64 characters, values up to 512.
Metadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
    Field(max_length=16),
]


class FineTuningJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(description="The base model: a local GGUF model of the catalog.")
    training_file: str = Field(description="A file id from POST /v1/files (purpose fine-tune).")
    validation_file: str | None = None
    suffix: str | None = Field(
        default=None, description="The registered model's name (default: '<model>-ft')."
    )
    hyperparameters: Hyperparameters = Field(
        default_factory=Hyperparameters,
        description="Deprecated by OpenAI in favour of method.supervised.hyperparameters.",
    )
    method: FineTuningMethod | None = None
    integrations: list[dict[str, Any]] | None = Field(
        default=None, description="Not supported: only an empty list (or null) is accepted."
    )
    seed: int | None = None
    metadata: Metadata | None = None
    merged: bool = Field(
        default=False,
        description="Also merge the adapter into a transformers checkpoint and serve the "
        "version with the transformers engine instead of llama.cpp.",
    )


class AliasSet(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: int = Field(ge=1)
