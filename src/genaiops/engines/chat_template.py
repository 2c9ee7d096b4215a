"""Render chat messages into a prompt with the model's template.

Templates are Jinja2 in the Hugging Face convention (``messages``, ``bos_token``,
``eos_token``, ``add_generation_prompt``), usually read from the GGUF metadata. They are
evaluated in Jinja's immutable sandbox because a GGUF file or a config entry is user input.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from genaiops.engines.base import ChatMessage
from genaiops.errors import ConfigError, InvalidRequest

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Gemma's turn layout, for the Gemma 3 base (its GGUF carries no template) once it is
# fine-tuned on conversations. Gemma has no system role: system text opens the first turn.
GEMMA = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = 'user' %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

NAMED_TEMPLATES = {"chatml": CHATML, "gemma": GEMMA}


def _raise(message: str) -> None:
    raise InvalidRequest(f"chat template rejected the conversation: {message}")


@lru_cache(maxsize=32)
def _compile(source: str) -> Any:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise ConfigError(f"invalid chat template: {exc}") from exc


def render(
    source: str,
    messages: Sequence[ChatMessage],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    template = _compile(NAMED_TEMPLATES.get(source, source))
    payload = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.content}
        | ({"name": m.name} if m.name else {})
        for m in messages
    ]
    try:
        rendered: str = template.render(
            messages=payload,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        )
    except InvalidRequest:
        raise
    except TemplateError as exc:
        raise InvalidRequest(f"chat template failed on these messages: {exc}") from exc
    return rendered
