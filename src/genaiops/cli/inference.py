"""genaiops chat / generate: run a model in-process, streaming tokens to the terminal."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Annotated

import typer

from genaiops.cli.common import ConfigOption, cli_errors, settings_from, write
from genaiops.config import Settings
from genaiops.engines.base import (
    ChatMessage,
    Finished,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from genaiops.gateway.pipeline import new_request_id
from genaiops.gateway.service import Gateway

ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Model name [default: default_model].")
]
MaxTokens = Annotated[int, typer.Option("--max-tokens", min=1, help="Completion token limit.")]
Temperature = Annotated[float, typer.Option(min=0.0, max=2.0, help="Sampling temperature.")]
Seed = Annotated[int | None, typer.Option(help="Sampling seed for reproducible output.")]


async def _run(
    gateway: Gateway, request: GenerationRequest, echo: bool
) -> tuple[str, Finished | None]:
    stream = await gateway.generate(request)
    parts: list[str] = []
    finished = None
    async for event in stream:
        if isinstance(event, TextDelta):
            parts.append(event.text)
            if echo:
                write(event.text)
        elif isinstance(event, Finished):
            finished = event
    if echo:
        write("\n")
    return "".join(parts), finished


async def _session(
    settings: Settings,
    model: str,
    requests: list[GenerationRequest] | None,
    chat: bool,
    params: SamplingParams,
    system: str | None,
    as_json: bool,
) -> None:
    load = model
    if Gateway.is_registry_reference(model):
        # A fine-tuned version: load its base; the version itself loads on first use.
        from genaiops.registry.service import Registry
        from genaiops.security.principal import SYSTEM_TENANT

        load = (
            await asyncio.to_thread(Registry(settings).resolve, SYSTEM_TENANT, model)
        ).base_model
    gateway = Gateway(settings, only=[load])
    await gateway.start()
    try:
        await gateway.wait_ready()
        if requests is not None:
            for request in requests:
                text, finished = await _run(gateway, request, echo=not as_json)
                if as_json:
                    typer.echo(json.dumps(_json(request, text, finished), ensure_ascii=False))
            return
        await _interactive(gateway, model, params, system, as_json)
    finally:
        await gateway.close()


def _json(request: GenerationRequest, text: str, finished: Finished | None) -> dict[str, object]:
    prompt = finished.prompt_tokens if finished else 0
    completion = finished.completion_tokens if finished else 0
    return {
        "id": request.request_id,
        "model": request.model,
        "text": text,
        "finish_reason": "length" if finished and finished.reason == "length" else "stop",
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


async def _read_line(prompt: str) -> str:
    """``input`` on a daemon thread: Ctrl-C at the prompt ends the session at once (a
    thread of the default executor would keep the process waiting for Enter)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def settle(value: str | None, error: BaseException | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(value or "")

    def read() -> None:
        try:
            value = input(prompt)
        except BaseException as exc:  # EOFError above all; handed to the session
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=read, name="chat-input", daemon=True).start()
    return await answer


async def _interactive(
    gateway: Gateway, model: str, params: SamplingParams, system: str | None, as_json: bool
) -> None:
    history: list[ChatMessage] = [ChatMessage("system", system)] if system else []
    typer.echo(f"chatting with {model}; an empty line or Ctrl-D ends the session", err=True)
    while True:
        try:
            # JSON output keeps stdout to the answers' objects: no prompt there.
            line = await _read_line("" if as_json else "> ")
        except EOFError:
            break
        if not line.strip():
            break
        history.append(ChatMessage("user", line))
        request = GenerationRequest(new_request_id("chat"), model, params, messages=list(history))
        text, finished = await _run(gateway, request, echo=not as_json)
        if as_json:
            typer.echo(json.dumps(_json(request, text, finished), ensure_ascii=False))
        history.append(ChatMessage("assistant", text))


def chat(
    question: Annotated[
        str | None, typer.Argument(help="Ask once and exit; omit for an interactive session.")
    ] = None,
    model: ModelOption = None,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    max_tokens: MaxTokens = 512,
    temperature: Temperature = 0.7,
    seed: Seed = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per answer."),
    config: ConfigOption = None,
) -> None:
    """Chat with a model in-process (no server needed)."""
    with cli_errors():
        settings = settings_from(config)
        name = model or settings.default_model
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
        requests = None
        if question is not None:
            messages = [ChatMessage("system", system)] if system else []
            messages.append(ChatMessage("user", question))
            requests = [GenerationRequest(new_request_id("chat"), name, params, messages=messages)]
        asyncio.run(_session(settings, name, requests, True, params, system, as_json))


def generate(
    prompt: Annotated[str, typer.Argument(help="Text to continue.")],
    model: ModelOption = None,
    max_tokens: MaxTokens = 128,
    temperature: Temperature = 0.7,
    seed: Seed = None,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object with token counts."),
    config: ConfigOption = None,
) -> None:
    """Complete a prompt with a model in-process (plain completion, no chat template)."""
    with cli_errors():
        settings = settings_from(config)
        name = model or settings.default_model
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
        request = GenerationRequest(new_request_id("gen"), name, params, prompt=prompt)
        asyncio.run(_session(settings, name, [request], False, params, None, as_json))
