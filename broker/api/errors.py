"""Error answers: one handler per ``BrokerError`` base class, found along the exception's MRO.

Starlette looks an exception's handler up class by class along its MRO, so registering
one handler per base class (``SecurityError`` → 401, ``PolicyDenied`` → 403 ...) covers
every subclass, and a subclass with a different answer (``PayloadTooLarge`` is a
``SecurityError`` but means 413) gets its own handler. Every answer is the same small JSON
shape (``ErrorBody``); none carries an exception's message, a stack trace, a submitted
value or any personal data: the located problems of a rejected message name places and
reasons only. The detail goes to the operator's log, ids only.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from adapters import AdapterError
from broker.api.auth import CredentialRefused
from broker.api.deps import settle_pending_assertion
from broker.api.ratelimit import RateLimited
from broker.exceptions import (
    BrokerError,
    ConfigurationError,
    PayloadInvalid,
    PayloadTooLarge,
    PolicyDenied,
    SecurityError,
    TransportError,
)
from broker.logging import get_logger

__all__ = ["ERROR_RESPONSES", "ErrorBody", "ProblemBody", "error_response", "install_handlers"]

_log = get_logger("api.errors")


class ProblemBody(BaseModel):
    """One located problem: where, and what is wrong (never the value)."""

    location: str = Field(description="A field path, segment-field, or row and column.")
    reason: str = Field(description="What is wrong, without quoting the input.")


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: str = Field(description="A stable code, e.g. `unauthenticated`, `payload_invalid`.")
    message: str = Field(description="A short generic explanation.")
    request_id: str | None = Field(default=None, description="Quote it when asking for help.")
    problems: list[ProblemBody] = Field(default_factory=list)


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: Error answers every route may give, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _doc("Missing or invalid credentials."),
    403: _doc("Authenticated, but not allowed."),
    422: _doc("The request (or the message in it) is invalid; problems are located."),
    429: _doc("Rate limit reached; see Retry-After."),
    500: _doc("A fault of the broker."),
    503: _doc("The database or RabbitMQ is unavailable; retry later."),
}


def error_response(
    request: Request,
    status: int,
    error: str,
    message: str,
    *,
    problems: list[ProblemBody] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON error answer, with the request id."""
    body = ErrorBody(
        error=error,
        message=message,
        request_id=getattr(request.state, "request_id", None),
        problems=problems or [],
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


Handler = Callable[[Request, Any], Awaitable[Response]]


async def _broker_error(request: Request, exc: BrokerError) -> Response:
    # Broker errors name ids, fields and places, never personal data: fit for the log.
    _log.error("request_failed", error=exc.code, exc_type=type(exc).__name__, message=str(exc))
    return error_response(request, 500, "internal", "internal error")


async def _security(request: Request, exc: SecurityError) -> Response:
    _log.warning(
        "request_unauthenticated",
        error=exc.code,
        reason=getattr(exc, "reason", exc.code),
        kid=getattr(exc, "kid", None),
    )
    return error_response(
        request,
        401,
        "unauthenticated",
        "authentication failed",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def _too_large(request: Request, exc: PayloadTooLarge) -> Response:
    limit = getattr(exc, "limit", None)
    message = f"body over {limit} bytes" if limit else "body too large"
    return error_response(request, 413, "too_large", message)


async def _policy(request: Request, exc: PolicyDenied) -> Response:
    _log.warning("request_forbidden", error=exc.code, reason=getattr(exc, "reason", exc.code))
    return error_response(request, 403, "forbidden", "not allowed")


async def _payload(request: Request, exc: PayloadInvalid) -> Response:
    problems = (
        [ProblemBody(location=p.location, reason=p.reason) for p in exc.problems]
        if isinstance(exc, AdapterError)
        else []
    )
    return error_response(request, 422, exc.code, "the message is invalid", problems=problems)


async def _transport(request: Request, exc: TransportError) -> Response:
    _log.error("request_unavailable", error=exc.code)
    return error_response(
        request, 503, "unavailable", "temporarily unavailable", headers={"Retry-After": "5"}
    )


async def _rate_limited(request: Request, exc: RateLimited) -> Response:
    retry = max(1, int(exc.retry_after + 0.999))
    return error_response(
        request, 429, exc.code, "rate limit reached", headers={"Retry-After": str(retry)}
    )


async def _validation(request: Request, exc: RequestValidationError) -> Response:
    # The route never ran: a client assertion it was to remember is remembered now, and
    # a reused one is refused as it would have been.
    try:
        await settle_pending_assertion(request)
    except CredentialRefused as refused:
        return await _security(request, refused)
    except TransportError as unavailable:
        return await _transport(request, unavailable)
    # FastAPI's default answer echoes the submitted value ("input"); never do that.
    problems = [
        ProblemBody(
            location=".".join(str(part) for part in error.get("loc", ())) or "request",
            reason=str(error.get("type", "invalid")),
        )
        for error in exc.errors()
    ]
    return error_response(
        request, 422, "request_invalid", "the request is invalid", problems=problems
    )


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    messages = {404: "not found", 405: "method not allowed", 406: "not acceptable"}
    return error_response(
        request,
        exc.status_code,
        f"http_{exc.status_code}",
        messages.get(exc.status_code, "request refused"),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The operator's log gets where it happened (files and lines, never the frames'
    # variables or the exception's text, which may quote input); the client learns only
    # that it was our fault.
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    where = [f"{Path(frame.filename).name}:{frame.lineno}:{frame.name}" for frame in frames]
    fields = (
        [f"{'.'.join(map(str, e['loc']))}:{e['type']}" for e in exc.errors()]
        if isinstance(exc, ValidationError)
        else []
    )
    _log.error("request_crashed", exc_type=type(exc).__name__, where=where, fields=fields[:10])
    return error_response(request, 500, "internal", "internal error")


def install_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    handlers: dict[type[Exception], Handler] = {
        BrokerError: _broker_error,
        ConfigurationError: _broker_error,
        SecurityError: _security,
        CredentialRefused: _security,
        PayloadTooLarge: _too_large,
        PolicyDenied: _policy,
        PayloadInvalid: _payload,
        TransportError: _transport,
        RateLimited: _rate_limited,
        RequestValidationError: _validation,
        StarletteHTTPException: _http,
        Exception: _unexpected,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
