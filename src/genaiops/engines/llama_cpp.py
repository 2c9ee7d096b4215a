"""llama.cpp engine: GGUF models in-process through llama-cpp-python.

Each loaded model owns one OS thread for its whole life (``threaded.ThreadedEngine``:
llama-cpp-python's OpenMP build loses two thirds of its decode speed when calls arrive from
changing threads). Tokenisation (read-only on the vocabulary) is
done on the caller's thread in ``prepare`` so that a prompt that can never fit is refused
before it waits in line. Cancellation is a flag the decode loop checks after every token.
"""

from __future__ import annotations

import codecs
import json
import os
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from genaiops.engines import bundled, chat_template, tools
from genaiops.engines.base import (
    Finished,
    GenerationRequest,
    ModelInfo,
    PreparedRequest,
    TextDelta,
    check_token_ids,
    require_text_messages,
)
from genaiops.engines.logprobs import Aligner, TokenLogprob, from_logits
from genaiops.engines.text import StopMatcher
from genaiops.engines.threaded import Job, ThreadedEngine
from genaiops.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotReady,
)

if TYPE_CHECKING:
    from genaiops.config import ModelConfig, Settings

# Sampling cut-offs applied on top of the OpenAI parameters; the same defaults as
# llama.cpp's own server, which keep small models coherent at temperature 1.
TOP_K = 40
MIN_P = 0.05
# OpenAI fields a local model cannot honour; refused rather than silently ignored.
_STDIO_LOCK = threading.Lock()
_stdio_kept = False


class _NoRedirect:
    def __init__(self, disable: bool = True):
        pass

    def __enter__(self) -> _NoRedirect:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def _keep_stdio() -> None:
    """Stop llama-cpp-python from pointing the process's stdout/stderr at /dev/null.

    With ``verbose=False`` it dup2()s /dev/null over file descriptors 1 and 2 while a model
    or grammar loads. That silences every other thread too (access logs written meanwhile
    are lost), and two models loading at once restore each other's /dev/null, leaving the
    server without stderr for good. Its native log callback already drops messages below
    ERROR when verbose is off, so the redirection is not needed to keep the console quiet.
    """
    global _stdio_kept
    with _STDIO_LOCK:
        if _stdio_kept:
            return
        import llama_cpp._internals
        import llama_cpp._utils
        import llama_cpp.llama
        import llama_cpp.llama_chat_format

        modules = (llama_cpp.llama, llama_cpp._internals, llama_cpp.llama_chat_format)
        for module in modules:
            if hasattr(module, "suppress_stdout_stderr"):
                setattr(module, "suppress_stdout_stderr", _NoRedirect)  # noqa: B010
        # The /dev/null handles it opened for that at import are never used now; closed,
        # they no longer show up as unclosed files when the process exits.
        for name in ("outnull_file", "errnull_file"):
            handle = getattr(llama_cpp._utils, name, None)
            if handle is not None and not handle.closed:
                handle.close()
        _stdio_kept = True


# How long the model thread waits, after a streamed answer's first text, for the event
# loop to have sent it (``CancelToken.shown``) before it decodes on: long enough for a
# loaded loop, short enough that a response that never reports it costs little.
_FIRST_TEXT_HANDOFF_S = 0.005
_UNSUPPORTED = ("functions",)
# A grammar longer than this is refused before llama.cpp parses it on every request.
_MAX_GRAMMAR_CHARS = 200_000


class LlamaCppEngine(ThreadedEngine):
    def __init__(self, config: ModelConfig, settings: Settings):
        super().__init__(config.name)
        self.config = config
        self._models_dir = settings.models_dir()
        self._llm: Any = None
        self._template: str | None = None
        self._n_vocab = 0
        self._bos = ""
        self._eos = ""
        self._add_bos = True

    # -- lifecycle -------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            engine="llama_cpp",
            description=self.config.description,
            context_length=self.config.context_length,
            supports_chat=self.supports_chat,
        )

    @property
    def supports_chat(self) -> bool:
        if self.config.chat_template == "none":
            return False
        if self.config.chat_template is not None:
            return True
        # Before loading the GGUF we cannot know; the bundled entries say so explicitly.
        return self._template is not None if self.ready else True

    def _load(self) -> None:
        from llama_cpp import Llama

        _keep_stdio()
        path = bundled.resolve_path(self.config.bundled, self.config.path, self._models_dir)
        threads = self.config.n_threads or os.cpu_count() or 1
        self._llm = Llama(
            model_path=str(path),
            n_ctx=self.config.context_length,
            n_batch=self.config.n_batch,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
            lora_path=str(self.config.lora_path) if self.config.lora_path else None,
        )
        # Asked once: llama-cpp-python's n_vocab() walks the C API (tens of microseconds),
        # too slow to ask per request or, with logprobs, per token.
        self._n_vocab = int(self._llm.n_vocab())
        metadata: dict[str, str] = self._llm.metadata or {}
        configured = self.config.chat_template
        if configured == "none":
            self._template = None
        elif configured is not None:
            self._template = configured
        else:
            self._template = metadata.get("tokenizer.chat_template")
        vocab_piece = self._piece
        self._bos = vocab_piece(self._llm.token_bos())
        self._eos = vocab_piece(self._llm.token_eos())
        self._add_bos = metadata.get("tokenizer.ggml.add_bos_token", "true") != "false"

    def _unload(self) -> None:
        self._llm = None

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        text: str = self._llm.detokenize([token], special=True).decode("utf-8", "replace")
        return text

    # -- request preparation (caller's thread) ---------------------------------------------

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        require_text_messages(self.name, request, tool_turns=True)
        unsupported = [k for k in _UNSUPPORTED if request.extra.get(k)]  # {} and [] are no-ops
        if unsupported:
            raise InvalidRequest(
                f"model '{self.name}' does not support: {', '.join(unsupported)}",
                param=unsupported[0],
            )
        bias = request.params.logit_bias
        check_token_ids(self.name, bias, self._n_vocab, "logit_bias")
        plan = tools.plan(request)
        tokens = self._tokens(request, plan)
        if not tokens:
            raise InvalidRequest("the prompt is empty", param="prompt")
        ctx = self.config.context_length
        max_tokens = request.params.max_tokens
        if len(tokens) >= ctx or (max_tokens is not None and len(tokens) + max_tokens > ctx):
            raise ContextLengthExceeded(
                prompt_tokens=len(tokens), max_tokens=max_tokens, context_length=ctx
            )
        if max_tokens is None:
            max_tokens = ctx - len(tokens)
        grammar = self._tool_grammar(plan, request) if plan else self._grammar(request)
        state: dict[str, Any] = {"tokens": tokens, "grammar": grammar, "tools": plan}
        return PreparedRequest(request, len(tokens), max_tokens, state)

    def token_ids(self, request: GenerationRequest) -> list[int]:
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        require_text_messages(self.name, request, tool_turns=True)
        return self._tokens(request, tools.plan(request))

    def _tokens(self, request: GenerationRequest, plan: tools.ToolPlan | None) -> list[int]:
        """The prompt's tokens: a chat rendered with its template (tools described for
        ``plan``), a completion prompt as it is."""
        if request.is_chat:
            if self._template is None:
                raise InvalidRequest(
                    f"model '{self.name}' has no chat template, so it only serves completions; "
                    "use /v1/completions or configure chat_template for it",
                    param="model",
                    code="chat_not_supported",
                )
            assert request.messages is not None
            messages = tools.conversation(request.messages, plan)
            text = chat_template.render(
                self._template, messages, bos_token=self._bos, eos_token=self._eos
            )
            add_bos = self._add_bos and not (self._bos and text.startswith(self._bos))
            tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        else:
            text = request.prompt or ""
            tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=self._add_bos, special=False)
        return list(tokens)

    def token_text(self, ids: list[int]) -> str:
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        vocab = self._n_vocab
        check_token_ids(self.name, ids, vocab)
        text: str = self._llm.detokenize(ids, special=True).decode("utf-8", "replace")
        return text

    def vocab_size(self) -> int:
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        return self._n_vocab

    def _grammar(self, request: GenerationRequest) -> Any:
        fmt = request.params.response_format
        if fmt.type == "text":
            return None
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        if fmt.type == "json_object":
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        try:
            grammar = LlamaGrammar.from_json_schema(json.dumps(fmt.schema or {}), verbose=False)
        except Exception as exc:  # the converter raises bare ValueError/KeyError/etc.
            raise InvalidRequest(
                f"response_format.json_schema cannot be enforced: {exc}",
                param="response_format",
            ) from exc
        self._check_grammar(grammar)
        return grammar

    def _tool_grammar(self, plan: tools.ToolPlan, request: GenerationRequest) -> Any:
        """The grammar an answer with tools keeps to (see engines/tools.py)."""
        from llama_cpp.llama_grammar import LlamaGrammar

        if request.params.response_format.type != "text":
            raise InvalidRequest(
                "response_format cannot be combined with tools on a local model: a call's "
                "arguments already follow the tool's parameters",
                param="response_format",
            )
        try:
            call = LlamaGrammar.from_json_schema(json.dumps(plan.schema()), verbose=False)
        except Exception as exc:  # the converter raises bare ValueError/KeyError/etc.
            raise InvalidRequest(
                f"the tools' parameters cannot be enforced: {exc}", param="tools"
            ) from exc
        self._check_grammar(call)
        return call

    def _check_grammar(self, grammar: Any) -> None:
        """Have llama.cpp parse the grammar once: it refuses some that the converter
        writes (a maxLength of thousands repeats a rule past its limits) by returning no
        sampler, which llama-cpp-python would put in the chain as is and crash on."""
        from llama_cpp import llama_cpp as lib

        text = getattr(grammar, "_grammar", None)
        root = getattr(grammar, "_root", None)
        if not isinstance(text, str) or not isinstance(root, str):
            return
        if len(text) > _MAX_GRAMMAR_CHARS:
            raise InvalidRequest(
                f"response_format.json_schema is too large to enforce ({len(text)} characters "
                f"of grammar; at most {_MAX_GRAMMAR_CHARS}): lower its maxLength, minItems or "
                "maxItems values",
                param="response_format",
            )
        sampler = lib.llama_sampler_init_grammar(
            self._llm._model.vocab, text.encode(), root.encode()
        )
        if not sampler:
            raise InvalidRequest(
                "response_format.json_schema cannot be enforced: llama.cpp refuses the "
                "grammar it gives (repetition counts such as maxLength, minItems or maxItems "
                "past its limits)",
                param="response_format",
            )
        lib.llama_sampler_free(sampler)

    # -- generation ------------------------------------------------------------------------

    def _logprob(self, token: int, top: int, text: str) -> TokenLogprob:
        """The entry of ``token``, from the logits it was just sampled from (the last
        position decoded: the generator yields before it decodes the token)."""
        from llama_cpp import llama_cpp as lib

        llm = self._llm
        pointer = lib.llama_get_logits_ith(llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
        return from_logits(
            logits, token, top, lambda t: bytes(llm.detokenize([t], special=True)), text
        )

    def _sampler_chain(self, bias: dict[int, float], lazy: Any = None) -> Callable[..., Any]:
        """A builder of llama-cpp-python's sampler chain, for what its own cannot do: the
        same stages in the same order (penalties, grammar, then greedy or top-k, typical,
        top-p, min-p, temperature and the seeded draw), led by llama.cpp's native
        logit-bias sampler when there is a ``logit_bias`` (llama-cpp-python's own goes
        through a Python callback on every candidate array, at a cost per token), and
        with ``lazy``, a grammar that holds the answer only once it starts like a tool
        call (llama.cpp's lazy grammar: prose costs nothing)."""
        from llama_cpp._internals import LlamaSampler

        llm = self._llm

        def build(**kw: Any) -> Any:
            sampler = LlamaSampler()  # type: ignore[no-untyped-call]
            if bias:
                sampler.add_logit_bias(self._n_vocab, bias)
            sampler.add_penalties(
                n_vocab=self._n_vocab,
                penalty_last_n=llm.last_n_tokens_size,
                penalty_repeat=kw["repeat_penalty"],
                penalty_freq=kw["frequency_penalty"],
                penalty_present=kw["presence_penalty"],
            )
            if lazy is not None:
                sampler.add_grammar_lazy_patterns(llm._model, lazy, [tools.CALL_TRIGGER], [])
            elif kw.get("grammar") is not None:
                sampler.add_grammar(llm._model, kw["grammar"])
            if kw["temp"] == 0:
                sampler.add_greedy()  # type: ignore[no-untyped-call]
                return sampler
            sampler.add_top_k(kw["top_k"])
            sampler.add_typical(kw["typical_p"], 1)
            sampler.add_top_p(kw["top_p"], 1)
            sampler.add_min_p(kw["min_p"], 1)
            sampler.add_temp(kw["temp"])
            sampler.add_dist(llm._seed)
            return sampler

        return build

    def _generator(self, prepared: PreparedRequest) -> Any:
        """``Llama.generate`` over the prompt, seeded, with the request's sampler chain."""
        params = prepared.request.params
        llm = self._llm
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        llm.set_seed(seed % (2**32))
        if params.seed is not None:
            # A prompt the cache already holds is not evaluated again but for its last
            # token, and one token's logits differ in the last bits from the same token's
            # in a whole-prompt batch: enough to change a sampled answer. A seeded request
            # evaluates its whole prompt every time, so the same request gives the same
            # answer whatever ran before it.
            llm.reset()
        plan = prepared.state.get("tools")
        grammar, lazy = prepared.state["grammar"], None
        if plan is not None and plan.mode == "auto":
            grammar, lazy = None, grammar
        if params.logit_bias or lazy is not None:
            # Read by ``generate`` when it builds its sampler; removed once the answer is
            # done (``_run``), so the class's own chain serves every other request.
            llm._init_sampler = self._sampler_chain(params.logit_bias, lazy)
        return llm.generate(
            prepared.state["tokens"],
            temp=params.temperature,
            top_p=params.top_p,
            top_k=TOP_K,
            min_p=MIN_P,
            repeat_penalty=1.0,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            grammar=grammar,
        )

    def _run(self, job: Job) -> None:
        prepared, cancel, emit = job.prepared, job.cancel, job.emit
        if cancel.cancelled:
            return
        plan = prepared.state.get("tools")
        if plan is not None:
            emit = tools.CallCatcher(plan, emit).emit  # an answer that is a call is held
        params = prepared.request.params
        llm = self._llm
        from llama_cpp import llama_cpp as lib

        assert prepared.max_tokens is not None
        generator = self._generator(prepared)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(params.stop)
        vocab = llm._model.vocab
        # With logprobs: each token's entry waits for its text to clear the stop matcher.
        aligner = Aligner() if params.logprobs is not None else None
        emitted = 0
        produced = 0
        reason: str = "length"
        stop_hit = False
        # A streamed answer's first text waits for its response to go out (see below).
        handoff = prepared.request.stream
        try:
            for token in generator:
                if cancel.cancelled:
                    reason = "cancelled"
                    break
                if not params.ignore_eos and lib.llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                produced += 1
                piece = decoder.decode(llm.detokenize([token]))
                if aligner is not None:
                    aligner.add([self._logprob(token, params.logprobs or 0, piece)])
                text, hit = stops.feed(piece)
                if text:
                    emitted += len(text)
                    emit(TextDelta(text, aligner.release(emitted) if aligner else ()))
                    if handoff:
                        # The first text is the time to first token: the next decode
                        # starts once the event loop has sent it (at most a few ms), so
                        # the loop and the client do not wait for a core behind it.
                        handoff = False
                        cancel.wait_shown(_FIRST_TEXT_HANDOFF_S)
                    # Give the core to the event loop (or, after the first text, to the
                    # client it woke) before the next decode spins up every core: the token
                    # reaches the client now rather than when the scheduler next preempts
                    # a decode thread (about 1.5 ms sooner per token on 2 cores, and about
                    # 10% faster streams).
                    os.sched_yield()
                if hit:
                    reason, stop_hit = "stop", True
                    break
                if produced >= prepared.max_tokens:
                    break
        finally:
            generator.close()
            llm.__dict__.pop("_init_sampler", None)
        if not stop_hit and reason != "cancelled":
            # Bytes of a character cut off by max_tokens are dropped, not shown as U+FFFD.
            tail = stops.flush()
            if tail:
                emitted += len(tail)
                emit(TextDelta(tail, aligner.release(emitted) if aligner else ()))
        emit(Finished(reason, prepared.prompt_tokens or 0, produced))  # type: ignore[arg-type]
