"""``GET /metrics``: Prometheus text, for a scraper with the metrics token or an admin."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from broker.api.auth import Role
from broker.api.context import AMQP_PROBE_SECONDS, PROBE_ERRORS, ApiContext
from broker.api.deps import (
    bearer_scheme,
    cookie_scheme,
    ensure_roles,
    get_context,
    require_staff,
)
from broker.api.errors import ERROR_RESPONSES
from broker.api.metrics import CONTENT_TYPE

__all__ = ["router"]

router = APIRouter(tags=["operations"])


async def _scraper(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> None:
    """The metrics token (compared in constant time), else an admin's credentials."""
    expected = get_context(request).settings.metrics_token
    if expected is not None and credentials is not None:
        given = credentials.credentials.encode()
        if hmac.compare_digest(given, expected.get_secret_value().encode()):
            return
    staff = await require_staff(request, credentials, cookie)
    await ensure_roles(request, staff, frozenset({Role.ADMIN}))


@router.get(
    "/metrics",
    name="metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        **ERROR_RESPONSES,
        200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
    },
)
async def metrics(request: Request, _: Annotated[None, Depends(_scraper)]) -> Response:
    """Decisions by kind and reason, outbox backlog, relay and consumer lag, HTTP timings."""
    context = get_context(request)
    depths = await _queue_depths(context)
    text = await asyncio.to_thread(context.metrics.render, depths)
    return Response(text, media_type=CONTENT_TYPE)


async def _queue_depths(context: ApiContext) -> dict[str, int] | None:
    """Messages ready in each queue of the topology, by passive declaration; None if down."""
    depths: dict[str, int] = {}
    try:
        async with asyncio.timeout(AMQP_PROBE_SECONDS):
            connection = await context.amqp()
            channel = await connection.channel(publisher_confirms=False)
            try:
                for spec in context.service.topology.queues:
                    queue = await channel.declare_queue(spec.name, passive=True)
                    result = queue.declaration_result
                    depths[spec.name] = int(result.message_count or 0)
            finally:
                if not channel.is_closed:
                    await channel.close()
    except PROBE_ERRORS:
        return None
    return depths
