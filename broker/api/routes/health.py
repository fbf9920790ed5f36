"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work)."""

from __future__ import annotations

import asyncio
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from broker.api.context import AMQP_PROBE_SECONDS, PROBE_ERRORS, ApiContext
from broker.api.deps import get_context
from broker.db import session_scope
from broker.exceptions import BrokerError
from broker.keys import KeyRegistry, KeyUse
from broker.logging import get_logger

__all__ = ["Health", "Readiness", "router"]

router = APIRouter(tags=["health"])
_log = get_logger("api.health")

Check = Literal["ok", "fail"]


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether each dependency is usable; no detail that could help an attacker."""

    status: Literal["ready", "not_ready"]
    database: Check
    rabbitmq: Check
    keys: Check


@router.get("/healthz", name="healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """Answers as long as the process serves requests."""
    return Health()


@router.get(
    "/readyz",
    name="readyz",
    response_model=Readiness,
    summary="Readiness: database, RabbitMQ and keys usable",
    responses={503: {"model": Readiness, "description": "A dependency is not usable."}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers, RabbitMQ accepts a channel and the keys load."""
    context = get_context(request)
    database, rabbitmq, keys = await asyncio.gather(
        asyncio.to_thread(_database, context), _rabbitmq(context), asyncio.to_thread(_keys, context)
    )
    ready = database == rabbitmq == keys == "ok"
    body = Readiness(
        status="ready" if ready else "not_ready", database=database, rabbitmq=rabbitmq, keys=keys
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def _database(context: ApiContext) -> Check:
    try:
        with session_scope(context.service.sessions) as session:
            session.execute(sa.text("SELECT 1"))
    except (BrokerError, sa.exc.SQLAlchemyError) as exc:
        _log.warning("ready_database_failed", error=type(exc).__name__)
        return "fail"
    return "ok"


async def _rabbitmq(context: ApiContext) -> Check:
    try:
        async with asyncio.timeout(AMQP_PROBE_SECONDS):
            connection = await context.amqp()
            channel = await connection.channel(publisher_confirms=False)
            await channel.close()
    except PROBE_ERRORS as exc:
        _log.warning("ready_rabbitmq_failed", error=type(exc).__name__)
        return "fail"
    return "ok"


def _keys(context: ApiContext) -> Check:
    service = context.service
    try:
        registry = KeyRegistry.load(service.keys_dir)
        registry.current_key(service.settings.crypto.service_party, KeyUse.SIGNING)
        registry.current_key(service.settings.crypto.service_party, KeyUse.ENCRYPTION)
    except BrokerError as exc:
        _log.warning("ready_keys_failed", error=exc.code)
        return "fail"
    return "ok" if service.service_keys.signing is not None else "fail"
