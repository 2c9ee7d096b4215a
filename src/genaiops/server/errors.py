"""The one place where failures become HTTP responses in the OpenAI error shape:

    {"error": {"message": str, "type": str, "param": str | null, "code": str | null}}

Domain errors, request-validation errors (400, not FastAPI's 422 layout), Starlette HTTP
errors (unknown route, wrong method, unparsable body) and anything unexpected (500, with
no internals leaked) all pass through here.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from genaiops.errors import (
    AuthenticationError,
    ConfigError,
    GenaiopsError,
    GenerationTimeout,
    InvalidRequest,
    ModelNotFound,
    ModelNotReady,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    StoreUnavailable,
    StructuredOutputError,
    UpstreamError,
    UpstreamHTTPError,
)

log = logging.getLogger("genaiops.server")

_STATUS: list[tuple[type[GenaiopsError], int, str]] = [
    (InvalidRequest, 400, "invalid_request_error"),
    (AuthenticationError, 401, "invalid_request_error"),
    (PermissionDenied, 403, "permission_error"),
    (ModelNotFound, 404, "invalid_request_error"),
    (NotFound, 404, "invalid_request_error"),
    (PayloadTooLarge, 413, "invalid_request_error"),
    (Overloaded, 429, "rate_limit_error"),
    (ModelNotReady, 503, "server_error"),
    (StoreUnavailable, 503, "server_error"),
    (UpstreamError, 502, "upstream_error"),
    (StructuredOutputError, 502, "server_error"),
    (GenerationTimeout, 504, "timeout_error"),
    (ConfigError, 500, "server_error"),
]


def error_payload(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# Upstream statuses that describe the caller's request; any other upstream 4xx is the
# gateway's own misconfiguration (502).
_UPSTREAM_PASSTHROUGH = frozenset({400, 413, 422, 429})


def status_for(exc: GenaiopsError) -> tuple[int, str]:
    if isinstance(exc, UpstreamHTTPError):
        if exc.status not in _UPSTREAM_PASSTHROUGH:
            return 502, "upstream_error"
        default = "rate_limit_error" if exc.status == 429 else "invalid_request_error"
        return exc.status, exc.error_type or default
    for cls, status, type_ in _STATUS:
        if isinstance(exc, cls):
            return status, type_
    return 500, "server_error"


def error_response(exc: GenaiopsError) -> JSONResponse:
    status, type_ = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers.update(exc.headers)
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="genaiops"'
    if isinstance(exc, Overloaded):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, ModelNotReady | StoreUnavailable):
        headers["Retry-After"] = "5"
    elif isinstance(exc, UpstreamHTTPError) and status == 429 and exc.retry_after:
        headers["Retry-After"] = exc.retry_after
    return JSONResponse(
        error_payload(exc.message, type_, exc.param, exc.code), status_code=status, headers=headers
    )


_UNION_TAGS = frozenset(
    {"str", "int", "float", "bool", "bytes", "none", "list", "dict", "tuple", "set"}
)
_TAG_WITH_ARGS = re.compile(r"[a-z][a-z0-9_-]*\[.*\]", re.DOTALL)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request body.", None
    first = errors[0]
    param = _param(first)
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error") or first.get("msg", "")
        return f"The request body is not valid JSON: {detail}", None
    if param is None and first.get("type") in ("model_attributes_type", "dict_type"):
        # Not an object: often JSON sent without its content type (curl -d sends a form).
        return (
            "The request body must be a JSON object, sent with 'content-type: application/json'.",
            None,
        )
    # A union reports one error per member ("stop": a string or a list of up to 4): the
    # member of the type that was sent says what is wrong ("at most 4 items").
    sent = type(first.get("input")).__name__
    same = [e for e in errors if _param(e) == param]
    first = next((e for e in same if any(_member(p, sent) for p in e.get("loc", ()))), first)
    where = f" at '{param}'" if param else ""
    others = len({_param(e) for e in errors} - {param})
    extra = f" (and {others} more errors)" if others else ""
    return f"Invalid request{where}: {first.get('msg')}{extra}", param


def _param(error: Any) -> str | None:
    loc = [str(p) for p in error.get("loc", ())]
    # Where the value came from is not part of its name: "limit", not "query.limit" (a
    # body field may itself be called "query": only the first place is dropped).
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    # Union members add their type's name to the location ("str", "list[str]",
    # "function-after[...]"); drop exactly those, keeping fields such as "stream" or "strict".
    loc = [p for p in loc if p not in _UNION_TAGS and not _TAG_WITH_ARGS.fullmatch(p)]
    return ".".join(loc) or None


def _member(tag: Any, sent: str) -> bool:
    tag = str(tag)
    return tag == sent or tag.startswith(sent + "[") or f"[{sent}[" in tag


_HTTP_CODES = {
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "payload_too_large"),
}


def install(app: FastAPI) -> None:
    @app.exception_handler(GenaiopsError)
    async def _domain(_: Request, exc: GenaiopsError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return JSONResponse(
            error_payload(message, "invalid_request_error", param, "invalid_request"),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_, code = _HTTP_CODES.get(exc.status_code, ("invalid_request_error", None))
        if exc.status_code >= 500:
            type_ = "server_error"
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 400 and message == "There was an error parsing the body":
            message = "The request body could not be parsed (it must be UTF-8 encoded JSON)."
            code = "invalid_request"
        return JSONResponse(
            error_payload(message, type_, None, code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_payload("The server had an error while processing the request.", "server_error"),
            status_code=500,
        )
