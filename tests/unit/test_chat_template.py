from __future__ import annotations

import pytest

from genaiops.engines.base import ChatMessage
from genaiops.engines.chat_template import render
from genaiops.errors import ConfigError, InvalidRequest


def test_chatml_layout() -> None:
    text = render("chatml", [ChatMessage("system", "Be brief."), ChatMessage("user", "Olá")])
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nOlá<|im_end|>\n<|im_start|>assistant\n"
    )


def test_developer_role_is_rendered_as_system() -> None:
    assert "<|im_start|>system\nrules" in render("chatml", [ChatMessage("developer", "rules")])


def test_template_can_reject_conversation() -> None:
    tpl = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}"
    with pytest.raises(InvalidRequest, match="user first"):
        render(tpl, [ChatMessage("assistant", "x")])


def test_templates_run_sandboxed() -> None:
    hostile = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(InvalidRequest):
        render(hostile, [ChatMessage("user", "x")])


def test_broken_template_is_config_error() -> None:
    with pytest.raises(ConfigError):
        render("{% for %}", [ChatMessage("user", "x")])
