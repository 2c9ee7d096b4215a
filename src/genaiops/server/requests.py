"""Request bodies as the routes read them.

FastAPI parses a JSON body with ``json.loads``, which accepts an escaped UTF-16 surrogate
that has no partner (``"\\ud800"``): the result is a Python string that is not Unicode
text, cannot be encoded as UTF-8, and would fail wherever the text goes next (the
tokenizer, a guard's redacted copy, the JSON response). ``JSONRoute`` refuses such a body
as invalid JSON (400) before any route sees it. The check costs nothing for ordinary
bodies: the parsed value is walked only when the raw bytes hold a surrogate escape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
LONE_SURROGATE = "a string holds an unpaired UTF-16 surrogate escape, which is not Unicode text"


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string in a parsed JSON value (keys included) holds a surrogate code
    point: ``json.loads`` joins every valid pair into one character, so what is left is
    unpaired."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class _CheckedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = json.loads(body)
            escape = _SURROGATE_ESCAPE.search(body)
            if escape is not None and has_lone_surrogate(value):
                doc = body.decode("utf-8", "replace")
                raise json.JSONDecodeError(LONE_SURROGATE, doc, escape.start())
            self._json = value
        return self._json


class JSONRoute(APIRoute):
    """The route class of every router: its handler reads the body through
    ``_CheckedRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            return await handler(_CheckedRequest(request.scope, request.receive))

        return checked
