"""The HTTP API for partners and operators (FastAPI): ingest, keys, agreement, audit, health."""

from __future__ import annotations

from broker.api.app import create_app
from broker.api.asyncapi import asyncapi_document, render_asyncapi
from broker.api.context import ApiContext
from broker.api.deps import (
    SESSION_COOKIE,
    Caller,
    end_session,
    require_caller,
    require_partner,
    require_role,
    require_staff,
    start_session,
)

__all__ = [
    "SESSION_COOKIE",
    "ApiContext",
    "Caller",
    "asyncapi_document",
    "create_app",
    "end_session",
    "render_asyncapi",
    "require_caller",
    "require_partner",
    "require_role",
    "require_staff",
    "start_session",
]
