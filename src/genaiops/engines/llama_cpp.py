"""llama.cpp engine: GGUF models in-process through llama-cpp-python.

Each loaded model owns one OS thread for its whole life. llama-cpp-python's build uses
OpenMP, and decode speed drops by about two thirds when calls arrive from changing threads,
so the event loop never touches the model: it sends jobs through a queue and receives
events back with ``call_soon_threadsafe``. Tokenisation (read-only on the vocabulary) is
done on the caller's thread in ``prepare`` so that a prompt that can never fit is refused
before it waits in line. Cancellation is a flag the decode loop checks after every token.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
import queue
import random
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genaiops.engines import bundled, chat_template
from genaiops.engines.base import (
    CancelToken,
    Finished,
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    PreparedRequest,
    TextDelta,
)
from genaiops.engines.text import StopMatcher
from genaiops.errors import (
    ContextLengthExceeded,
    GenaiopsError,
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
        import llama_cpp.llama

        for module in (llama_cpp.llama, llama_cpp._internals):
            if hasattr(module, "suppress_stdout_stderr"):
                setattr(module, "suppress_stdout_stderr", _NoRedirect)  # noqa: B010
        _stdio_kept = True


_UNSUPPORTED = ("tools", "functions", "logprobs", "top_logprobs", "logit_bias")


@dataclass
class _Job:
    prepared: PreparedRequest
    cancel: CancelToken
    emit: Callable[[GenerationEvent | BaseException | None], None]


class LlamaCppEngine:
    max_concurrency = 1

    def __init__(self, config: ModelConfig, settings: Settings):
        self.name = config.name
        self.config = config
        self._models_dir = settings.models_dir()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._llm: Any = None
        self._state = "loading"
        self._template: str | None = None
        self._bos = ""
        self._eos = ""
        self._add_bos = True

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._state == "ready"

    @property
    def state(self) -> str:
        return self._state

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

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        loaded: asyncio.Future[None] = loop.create_future()

        def report(exc: BaseException | None) -> None:
            if loaded.done():
                return
            if exc is None:
                loaded.set_result(None)
            else:
                loaded.set_exception(exc)

        self._thread = threading.Thread(
            target=self._thread_main,
            args=(lambda exc: loop.call_soon_threadsafe(report, exc),),
            name=f"genaiops-model-{self.name}",
            daemon=True,
        )
        self._thread.start()
        try:
            await loaded
        except Exception as exc:
            self._state = f"failed: {exc}"
            raise

    async def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join, 30)
        self._state = "closed"

    def _thread_main(self, report: Callable[[BaseException | None], None]) -> None:
        try:
            self._load()
        except BaseException as exc:  # reported to start(); the thread then exits
            report(exc)
            return
        self._state = "ready"
        report(None)
        while True:
            job = self._jobs.get()
            if job is None:
                break
            try:
                self._run(job)
            except BaseException as exc:
                job.emit(exc)
            finally:
                job.emit(None)
        self._llm = None

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

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        text: str = self._llm.detokenize([token], special=True).decode("utf-8", "replace")
        return text

    # -- request preparation (caller's thread) ---------------------------------------------

    def prepare(self, request: GenerationRequest) -> PreparedRequest:
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        unsupported = [k for k in _UNSUPPORTED if request.extra.get(k) not in (None, False, 0, [])]
        if unsupported:
            raise InvalidRequest(
                f"model '{self.name}' does not support: {', '.join(unsupported)}",
                param=unsupported[0],
            )
        if request.is_chat:
            if self._template is None:
                raise InvalidRequest(
                    f"model '{self.name}' has no chat template, so it only serves completions; "
                    "use /v1/completions or configure chat_template for it",
                    param="model",
                    code="chat_not_supported",
                )
            assert request.messages is not None
            text = chat_template.render(
                self._template, request.messages, bos_token=self._bos, eos_token=self._eos
            )
            add_bos = self._add_bos and not (self._bos and text.startswith(self._bos))
            tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        else:
            text = request.prompt or ""
            tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=self._add_bos, special=False)
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
        state: dict[str, Any] = {"tokens": tokens, "grammar": self._grammar(request)}
        return PreparedRequest(request, len(tokens), max_tokens, state)

    def _grammar(self, request: GenerationRequest) -> Any:
        fmt = request.params.response_format
        if fmt.type == "text":
            return None
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        if fmt.type == "json_object":
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        try:
            return LlamaGrammar.from_json_schema(json.dumps(fmt.schema or {}), verbose=False)
        except Exception as exc:  # the converter raises bare ValueError/KeyError/etc.
            raise InvalidRequest(
                f"response_format.json_schema cannot be enforced: {exc}",
                param="response_format",
            ) from exc

    # -- generation ------------------------------------------------------------------------

    async def generate(
        self, prepared: PreparedRequest, cancel: CancelToken
    ) -> AsyncIterator[GenerationEvent]:
        if not self.ready:
            raise ModelNotReady(f"model '{self.name}' is {self._state}")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[GenerationEvent | BaseException | None] = asyncio.Queue()

        def emit(item: GenerationEvent | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # loop closed during shutdown: nobody is listening
                cancel.cancel()

        self._jobs.put(_Job(prepared, cancel, emit))
        try:
            while True:
                item = await events.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    if isinstance(item, GenaiopsError):
                        raise item
                    raise RuntimeError(f"model '{self.name}' failed: {item}") from item
                yield item
        finally:
            # Whether we finished, failed or were closed early, the thread stops at the
            # next token.
            cancel.cancel()

    def _run(self, job: _Job) -> None:
        prepared, cancel, emit = job.prepared, job.cancel, job.emit
        if cancel.cancelled:
            return
        params = prepared.request.params
        llm = self._llm
        from llama_cpp import llama_cpp as lib

        seed = params.seed if params.seed is not None else random.getrandbits(32)
        llm.set_seed(seed % (2**32))
        tokens = prepared.state["tokens"]
        assert prepared.max_tokens is not None
        generator = llm.generate(
            tokens,
            temp=params.temperature,
            top_p=params.top_p,
            top_k=TOP_K,
            min_p=MIN_P,
            repeat_penalty=1.0,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            grammar=prepared.state["grammar"],
        )
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(params.stop)
        vocab = llm._model.vocab
        produced = 0
        reason: str = "length"
        stop_hit = False
        try:
            for token in generator:
                if cancel.cancelled:
                    reason = "cancelled"
                    break
                if not params.ignore_eos and lib.llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                produced += 1
                text, hit = stops.feed(decoder.decode(llm.detokenize([token])))
                if text:
                    emit(TextDelta(text))
                if hit:
                    reason, stop_hit = "stop", True
                    break
                if produced >= prepared.max_tokens:
                    break
        finally:
            generator.close()
        if not stop_hit and reason != "cancelled":
            # Bytes of a character cut off by max_tokens are dropped, not shown as U+FFFD.
            tail = stops.flush()
            if tail:
                emit(TextDelta(tail))
        emit(Finished(reason, prepared.prompt_tokens or 0, produced))  # type: ignore[arg-type]
