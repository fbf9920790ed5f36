"""The API's outer layer: request ids, request logs (never bodies), security headers, size caps.

One pure ASGI middleware, so every answer (errors included) gets the same headers, and the
body limit is enforced while the body streams in: a request is refused on its
``Content-Length`` before a byte is read, and a body without one is counted as it arrives.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable

import structlog
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.api.metrics import ApiMetrics
from broker.exceptions import PayloadTooLarge
from broker.logging import get_logger

__all__ = [
    "API_CSP",
    "REQUEST_ID_HEADER",
    "BodyTooLarge",
    "SecurityMiddleware",
    "new_request_id",
]

REQUEST_ID_HEADER = "x-request-id"
#: The API serves JSON only: nothing may be loaded, framed or run from its answers. A page
#: that needs more (the intake web pages) sets its own Content-Security-Policy header.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_HSTS = "max-age=31536000; includeSubDomains"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{7,63}$")
# Ten digits in a row could be an NHS number; such an id is never logged or audited.
_DIGIT_RUN = re.compile(r"\d{10}")

_log = get_logger("api.http")


class BodyTooLarge(PayloadTooLarge):
    """A request body over its limit, refused before it was parsed (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")
        #: The limit in bytes, which the answer may state.
        self.limit = limit


class SecurityMiddleware:
    """Request id, request log line, security headers, HTTP metrics, body size cap."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ApiMetrics,
        body_limit: Callable[[str], int],
        hsts: bool,
    ) -> None:
        """Wrap ``app``.

        Args:
            app: the application.
            metrics: where request durations are observed.
            body_limit: the largest body allowed for a request path.
            hsts: send Strict-Transport-Security (the service terminates TLS itself).
        """
        self._app = app
        self._metrics = metrics
        self._body_limit = body_limit
        self._hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request; pass other scopes through."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self._body_limit(scope["path"])
        status = 500
        hsts = self._hsts or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(
                    (name, value)
                    for name, value in _headers(request_id, hsts)
                    if name not in present
                )
                message = {**message, "headers": headers}
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                await _refuse_too_large(scope, send_with_headers, request_id, limit)
                return
            await self._app(scope, _counting(receive, limit), send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self._metrics.requests.labels(template, scope["method"], str(status)).observe(elapsed)
            state = scope.get("state", {})
            _log.info(
                "http_request",
                method=scope["method"],
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                party=state.get("party"),
                actor=state.get("actor"),
            )
            structlog.contextvars.unbind_contextvars("request_id")


def _headers(request_id: str, hsts: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-request-id", request_id.encode()),
        (b"content-security-policy", API_CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-resource-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    ]
    if hsts:
        headers.append((b"strict-transport-security", _HSTS.encode()))
    return headers


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            # A caller's id is kept for correlation only if it cannot smuggle anything.
            if _SAFE_REQUEST_ID.match(text) and not _DIGIT_RUN.search(text):
                return text
            break
    return new_request_id()


def new_request_id() -> str:
    """A random id in three groups of eight hex digits: never ten digits in a row."""
    raw = secrets.token_hex(12)
    return f"{raw[:8]}-{raw[8:16]}-{raw[16:]}"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _counting(receive: Receive, limit: int) -> Receive:
    """A ``receive`` that refuses the body once more than ``limit`` bytes have arrived."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


async def _refuse_too_large(scope: Scope, send: Send, request_id: str, limit: int) -> None:
    body = {
        "error": "too_large",
        "message": f"body over {limit} bytes",
        "request_id": request_id,
        "problems": [],
    }
    # Close the connection: the client may still be sending the body we will not read.
    response = JSONResponse(body, status_code=413, headers={"connection": "close"})

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
