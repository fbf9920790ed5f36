"""The FastAPI application: routes, error handlers, the security middleware, its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from broker.api.auth import AccountStore, StaffVerifier
from broker.api.context import ApiContext
from broker.api.errors import install_handlers
from broker.api.middleware import SecurityMiddleware
from broker.api.routes import ROUTERS
from broker.api.routes.asyncapi import package_version
from broker.api.routes.ingest import body_limit_for
from broker.pipeline import OnStored
from broker.preparers import PrepareProcesses
from broker.service import Service

__all__ = ["create_app"]

_INGEST_PREFIX = "/v1/ingest/"

_DESCRIPTION = """\
Partners send native messages (`POST /v1/ingest/{adapter}`) authenticated by a signed JWT
client assertion per request; operators and staff use bearer tokens or a session cookie.
See docs/partners/integration.md and docs/operations-auth.md.
"""


def create_app(
    service: Service,
    *,
    staff_verifier: StaffVerifier | None = None,
    accounts: AccountStore | None = None,
    on_stored: OnStored | None = None,
    preparers: PrepareProcesses | None = None,
) -> FastAPI:
    """The HTTP API of ``service``.

    Args:
        service: the loaded service.
        staff_verifier: the deployment's identity provider for staff (``StaffVerifier``);
            the local account store when omitted.
        accounts: the local account store to use (the default hashes with argon2id).
        on_stored: told (on the event loop) the outbox rows each ingest commit wrote,
            e.g. to hand them to the outbox relay running in the same process.
        preparers: prepare processes shared with the rest of the service (started and
            closed by their owner), used when ``api.prepare_processes`` is set, instead of
            the API starting its own.
    """
    context = ApiContext.build(
        service,
        staff_verifier=staff_verifier,
        accounts=accounts,
        on_stored=on_stored,
        preparers=preparers,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await context.start()
            yield
        finally:
            await context.aclose()

    app = FastAPI(
        title="mash-broker",
        version=package_version(),
        description=_DESCRIPTION,
        # Swagger UI and ReDoc load scripts from a CDN, which the API's CSP forbids;
        # the OpenAPI document itself is served.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.api = context
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # The intake pages build on this package's dependencies, so they are imported last.
    from broker.web import router as intake_router  # noqa: PLC0415

    app.include_router(intake_router)
    largest_ingest = max(context.settings.max_body_bytes, context.settings.max_request_bytes)

    def body_limit(path: str) -> int:
        if path.startswith(_INGEST_PREFIX):
            adapter = path.removeprefix(_INGEST_PREFIX)
            try:
                return body_limit_for(context, adapter)
            except KeyError:
                return largest_ingest
        return context.settings.max_request_bytes

    app.add_middleware(
        SecurityMiddleware, metrics=context.metrics, body_limit=body_limit, hsts=context.tls
    )
    return app
