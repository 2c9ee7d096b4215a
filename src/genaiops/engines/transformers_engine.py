"""A transformers engine: serves a Hugging Face checkpoint (for example a fine-tuned model
merged with its LoRA adapter) for architectures llama.cpp cannot run, or when a GGUF
adapter is not wanted.

Like the llama.cpp engine it owns one OS thread for its whole life
(``threaded.ThreadedEngine``); the decode loop is its own (a forward pass per token with
the KV cache), so it can stop at a stop string, at the end-of-turn token or on
cancellation between two tokens, and count tokens exactly. Sampling follows the OpenAI
parameters: greedy at temperature 0, otherwise temperature and nucleus (top-p) sampling
with an optional seed. Structured outputs (grammar-constrained JSON) are llama.cpp's and
are refused here.

Throughput is well below llama.cpp's on CPU (no quantized kernels); on a GPU machine the
same engine uses it when torch finds one (``device = "auto"``).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from genaiops.engines import chat_template
from genaiops.engines.base import (
    Finished,
    GenerationRequest,
    ModelInfo,
    PreparedRequest,
    TextDelta,
    require_text_messages,
)
from genaiops.engines.text import StopMatcher
from genaiops.engines.threaded import Job, ThreadedEngine
from genaiops.errors import ContextLengthExceeded, InvalidRequest, ModelNotReady

if TYPE_CHECKING:
    from genaiops.config import ModelConfig, Settings

_UNSUPPORTED = ("tools", "logit_bias")


class TransformersEngine(ThreadedEngine):
    def __init__(self, config: ModelConfig, settings: Settings):
        if config.path is None:
            raise InvalidRequest(f"model {config.name!r}: the transformers engine needs 'path'")
        super().__init__(config.name)
        self.config = config
        self._model: Any = None
        self._tokenizer: Any = None
        self._template: str | None = None
        self._stop_ids: set[int] = set()
        self._cache_arg = "past_key_values"

    @property
    def supports_chat(self) -> bool:
        if self.config.chat_template == "none":
            return False
        return self._template is not None if self.ready else True

    def info(self) -> ModelInfo:
        return ModelInfo(self.name, "transformers", self.config.description,
                         self.config.context_length, self.supports_chat)  # fmt: skip

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = str(self.config.path)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        self._model.eval()
        # transformers 5 renamed the KV cache argument and output ("cache"); 4.x says
        # "past_key_values".
        params = inspect.signature(type(self._model).forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        configured = self.config.chat_template
        if configured == "none":
            self._template = None
        else:
            self._template = configured or getattr(self._tokenizer, "chat_template", None)
        eos = self._tokenizer.eos_token_id
        self._stop_ids = {int(eos)} if eos is not None else set()
        for marker in ("<end_of_turn>", "<|im_end|>", "<|eot_id|>"):
            token_id = self._tokenizer.convert_tokens_to_ids(marker)
            if isinstance(token_id, int) and token_id != self._tokenizer.unk_token_id:
                self._stop_ids.add(token_id)

    def _unload(self) -> None:
        self._model = None

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        require_text_messages(self.name, request)
        unsupported = [k for k in _UNSUPPORTED if request.extra.get(k)]  # {} and [] are no-ops
        if request.params.response_format.type != "text":
            unsupported.append("response_format")
        if request.params.logprobs is not None:
            unsupported.append("logprobs")
        if unsupported:
            raise InvalidRequest(
                f"model '{self.name}' does not support: {', '.join(unsupported)}",
                param=unsupported[0],
            )
        tok = self._tokenizer
        if request.is_chat:
            if self._template is None:
                raise InvalidRequest(
                    f"model '{self.name}' has no chat template, so it only serves completions",
                    param="model",
                    code="chat_not_supported",
                )
            assert request.messages is not None
            text = chat_template.render(self._template, request.messages)
        else:
            text = request.prompt or ""
        ids: list[int] = tok.encode(text, add_special_tokens=False)
        if tok.bos_token_id is not None and getattr(tok, "add_bos_token", False):
            ids = [int(tok.bos_token_id), *ids]
        if not ids:
            raise InvalidRequest("the prompt is empty", param="prompt")
        ctx, max_tokens = self.config.context_length, request.params.max_tokens
        if len(ids) >= ctx or (max_tokens is not None and len(ids) + max_tokens > ctx):
            raise ContextLengthExceeded(
                prompt_tokens=len(ids), max_tokens=max_tokens, context_length=ctx
            )
        return PreparedRequest(request, len(ids), max_tokens or ctx - len(ids), {"ids": ids})

    def _run(self, job: Job) -> None:
        import torch

        prepared, cancel, emit = job.prepared, job.cancel, job.emit
        params = prepared.request.params
        generator = torch.Generator()
        if params.seed is not None:
            generator.manual_seed(params.seed)
        ids = torch.tensor([prepared.state["ids"]])
        stops = StopMatcher(params.stop)
        produced, reason, shown, out, stop_hit = 0, "length", "", [], False
        past = None
        assert prepared.max_tokens is not None
        with torch.no_grad():
            while produced < prepared.max_tokens:
                if cancel.cancelled:
                    return
                result = self._model(input_ids=ids, use_cache=True, **{self._cache_arg: past})
                past = getattr(result, self._cache_arg)
                token = _sample(result.logits[0, -1].float(), params.temperature, params.top_p,
                                generator)  # fmt: skip
                if token in self._stop_ids and not params.ignore_eos:
                    reason = "stop"
                    break
                produced += 1
                out.append(token)
                text = self._tokenizer.decode(out, skip_special_tokens=True)
                if text.endswith("\ufffd"):
                    text = text[:-1]  # a character cut in the middle: wait for its bytes
                delta, shown = text[len(shown) :], text if len(text) > len(shown) else shown
                piece, hit = stops.feed(delta)
                if piece:
                    emit(TextDelta(piece))
                if hit:
                    reason, stop_hit = "stop", True
                    break
                ids = torch.tensor([[token]])
        if not stop_hit:
            tail = stops.flush()
            if tail:
                emit(TextDelta(tail))
        emit(Finished(reason, prepared.prompt_tokens or 0, produced))  # type: ignore[arg-type]


def _sample(logits: Any, temperature: float, top_p: float, generator: Any) -> int:
    import torch

    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))
