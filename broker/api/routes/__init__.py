"""The API's routers, one module per resource."""

from __future__ import annotations

from broker.api.routes import agreement, asyncapi, audit, auth, health, ingest, keys, metrics

__all__ = ["ROUTERS"]

#: Every router, in the order the OpenAPI document lists them.
ROUTERS = (
    ingest.router,
    keys.router,
    agreement.router,
    audit.router,
    auth.router,
    health.router,
    metrics.router,
    asyncapi.router,
)
