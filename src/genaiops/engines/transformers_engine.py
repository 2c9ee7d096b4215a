"""A transformers engine: serves a Hugging Face checkpoint (for example a fine-tuned model
merged with its LoRA adapter) for architectures llama.cpp cannot run, or when a GGUF
adapter is not wanted.

Like the llama.cpp engine it owns one OS thread for its whole life
(``threaded.ThreadedEngine``); the decode loop is its own (a forward pass per token with
the KV cache), so it can stop at a stop string, at the end-of-turn token or on
cancellation between two tokens, and count tokens exactly. Sampling follows the OpenAI
parameters: greedy at temperature 0, otherwise temperature and nucleus (top-p) sampling
with an optional seed, after OpenAI's ``logit_bias``; log probabilities come from the raw
logits, as the llama.cpp engine's do. Structured outputs (grammar-constrained JSON) are
llama.cpp's and are refused here.

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
    check_token_ids,
    require_text_messages,
)
from genaiops.engines.logprobs import Aligner, from_logits
from genaiops.engines.text import StopMatcher
from genaiops.engines.threaded import Job, ThreadedEngine
from genaiops.errors import ContextLengthExceeded, InvalidRequest, ModelNotReady

if TYPE_CHECKING:
    from genaiops.config import ModelConfig, Settings

_UNSUPPORTED = ("tools",)


def _byte_alphabet() -> dict[str, int]:
    """Byte-level BPE's printable stand-ins for the 256 byte values (the GPT-2 scheme):
    printable Latin-1 bytes stand for themselves, the others for code points from 256 up."""
    kept = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = (b for b in range(256) if b not in kept)
    table = {chr(b): b for b in kept}
    table.update({chr(256 + i): b for i, b in enumerate(extra)})
    return table


_BYTE_OF = _byte_alphabet()


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
        self._byte_level = False

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
        decoder = getattr(getattr(self._tokenizer, "backend_tokenizer", None), "decoder", None)
        self._byte_level = type(decoder).__name__ == "ByteLevel"
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
        if unsupported:
            raise InvalidRequest(
                f"model '{self.name}' does not support: {', '.join(unsupported)}",
                param=unsupported[0],
            )
        check_token_ids(self.name, request.params.logit_bias, self.vocab_size(), "logit_bias")
        ids = self.token_ids(request)
        if not ids:
            raise InvalidRequest("the prompt is empty", param="prompt")
        ctx, max_tokens = self.config.context_length, request.params.max_tokens
        if len(ids) >= ctx or (max_tokens is not None and len(ids) + max_tokens > ctx):
            raise ContextLengthExceeded(
                prompt_tokens=len(ids), max_tokens=max_tokens, context_length=ctx
            )
        return PreparedRequest(request, len(ids), max_tokens or ctx - len(ids), {"ids": ids})

    def token_ids(self, request: GenerationRequest) -> list[int]:
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        require_text_messages(self.name, request)
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
        return ids

    def token_text(self, ids: list[int]) -> str:
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        check_token_ids(self.name, ids, self.vocab_size())
        return str(self._tokenizer.decode(ids, skip_special_tokens=False))

    def vocab_size(self) -> int:
        """The width of the model's logits (at least the tokenizer's vocabulary)."""
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        return int(self._model.get_output_embeddings().weight.shape[0])

    def _token_bytes(self, token: int) -> bytes:
        """A token's own bytes: byte-level BPE pieces mapped back to bytes, SentencePiece's
        byte-fallback pieces (``<0xE2>``) as their byte, and its word-boundary mark as a
        space; decoding the id alone would lose a split character's bytes and, with some
        tokenizers, a leading space."""
        piece = self._tokenizer.convert_ids_to_tokens(token)
        if not isinstance(piece, str):
            return b""
        if self._byte_level and all(c in _BYTE_OF for c in piece):
            return bytes(_BYTE_OF[c] for c in piece)
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            try:
                return bytes([int(piece[3:5], 16)])
            except ValueError:
                pass
        return piece.replace("\u2581", " ").encode("utf-8")

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
        bias = _bias_vector(params.logit_bias, self.vocab_size())
        aligner = Aligner() if params.logprobs is not None else None
        emitted, past = 0, None
        assert prepared.max_tokens is not None
        with torch.no_grad():
            while produced < prepared.max_tokens:
                if cancel.cancelled:
                    return
                result = self._model(input_ids=ids, use_cache=True, **{self._cache_arg: past})
                past = getattr(result, self._cache_arg)
                logits = result.logits[0, -1].float()
                scores = logits if bias is None else logits + bias.to(logits.device)
                token = _sample(scores, params.temperature, params.top_p, generator)
                if token in self._stop_ids and not params.ignore_eos:
                    reason = "stop"
                    break
                produced += 1
                out.append(token)
                text = self._tokenizer.decode(out, skip_special_tokens=True)
                if text.endswith("\ufffd"):
                    text = text[:-1]  # a character cut in the middle: wait for its bytes
                delta, shown = text[len(shown) :], text if len(text) > len(shown) else shown
                if aligner is not None:
                    top = params.logprobs or 0
                    row = logits.cpu().numpy()
                    aligner.add([from_logits(row, token, top, self._token_bytes, delta)])
                piece, hit = stops.feed(delta)
                if piece:
                    emitted += len(piece)
                    emit(TextDelta(piece, aligner.release(emitted) if aligner else ()))
                if hit:
                    reason, stop_hit = "stop", True
                    break
                ids = torch.tensor([[token]])
        if not stop_hit:
            tail = stops.flush()
            if tail:
                emitted += len(tail)
                emit(TextDelta(tail, aligner.release(emitted) if aligner else ()))
        emit(Finished(reason, prepared.prompt_tokens or 0, produced))  # type: ignore[arg-type]


def _bias_vector(bias: dict[int, float], width: int) -> Any:
    """OpenAI's ``logit_bias`` as a vector added to each position's logits (None: none)."""
    if not bias:
        return None
    import torch

    vector = torch.zeros(width)
    vector[list(bias)] = torch.tensor(list(bias.values()), dtype=torch.float32)
    return vector


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
