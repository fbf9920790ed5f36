"""``GET /asyncapi.json``: the AsyncAPI 3.0 document of this broker's AMQP side."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from fastapi import APIRouter, Request

from broker.api.asyncapi import asyncapi_document
from broker.api.deps import get_context

__all__ = ["package_version", "router"]

router = APIRouter(tags=["documents"])


def package_version() -> str:
    """The installed mash-broker version."""
    try:
        return importlib.metadata.version("mash-broker")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - always installed
        return "0.0.0"


@router.get(
    "/asyncapi.json",
    name="asyncapi",
    summary="The AsyncAPI 3.0 document of the AMQP interface",
    response_model=dict[str, Any],
)
async def asyncapi(request: Request) -> dict[str, Any]:
    """Ingest channels, disclosure queues and their payload schemas, for this topology."""
    context = get_context(request)
    if context.asyncapi is None:
        context.asyncapi = asyncapi_document(context.service.topology, version=package_version())
    return context.asyncapi
