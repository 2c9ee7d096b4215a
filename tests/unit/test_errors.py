from __future__ import annotations

import json

import pytest

from genaiops.errors import (
    ContextLengthExceeded,
    GenaiopsError,
    GenerationTimeout,
    InvalidRequest,
    ModelNotFound,
    ModelNotReady,
    Overloaded,
    PayloadTooLarge,
    UpstreamError,
    UpstreamHTTPError,
)
from genaiops.server.errors import error_response, status_for


@pytest.mark.parametrize(
    ("exc", "status", "type_"),
    [
        (InvalidRequest("bad"), 400, "invalid_request_error"),
        (
            ContextLengthExceeded(prompt_tokens=10, max_tokens=5, context_length=12),
            400,
            "invalid_request_error",
        ),
        (ModelNotFound("m", ["a"]), 404, "invalid_request_error"),
        (PayloadTooLarge("big"), 413, "invalid_request_error"),
        (Overloaded("busy", retry_after=3), 429, "rate_limit_error"),
        (UpstreamError("down"), 502, "upstream_error"),
        (ModelNotReady("loading"), 503, "server_error"),
        (GenerationTimeout("slow"), 504, "timeout_error"),
        (UpstreamHTTPError("nope", status=422, error_type="x"), 422, "x"),
        (UpstreamHTTPError("slow down", status=429), 429, "rate_limit_error"),
        # The gateway's own key or upstream_model is wrong: not the caller's fault.
        (UpstreamHTTPError("bad key", status=401), 502, "upstream_error"),
        (UpstreamHTTPError("no model", status=404, error_type="x"), 502, "upstream_error"),
        (GenaiopsError("?"), 500, "server_error"),
    ],
)
def test_status_mapping(exc: GenaiopsError, status: int, type_: str) -> None:
    assert status_for(exc) == (status, type_)
    response = error_response(exc)
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert body["error"]["message"] == exc.message
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_retry_after_header_on_overload() -> None:
    assert error_response(Overloaded("busy", retry_after=7)).headers["retry-after"] == "7"


def test_upstream_retry_after_is_copied() -> None:
    limited = UpstreamHTTPError("slow down", status=429, retry_after="17")
    assert error_response(limited).headers["retry-after"] == "17"
    assert "retry-after" not in error_response(UpstreamHTTPError("bad", status=400)).headers


def test_context_message_carries_counts() -> None:
    exc = ContextLengthExceeded(prompt_tokens=100, max_tokens=50, context_length=120)
    assert "120" in exc.message and "150" in exc.message and "100 in the prompt" in exc.message
    assert exc.code == "context_length_exceeded"
    no_room = ContextLengthExceeded(prompt_tokens=130, max_tokens=None, context_length=120)
    assert "130" in no_room.message


def test_model_not_found_lists_models() -> None:
    exc = ModelNotFound("x", ["a", "b"])
    assert "a, b" in exc.message and exc.param == "model"
