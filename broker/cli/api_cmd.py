"""``mash-broker api``: write the API documents (AsyncAPI for AMQP, OpenAPI for HTTP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from broker.api.asyncapi import asyncapi_document, render_asyncapi
from broker.api.routes.asyncapi import package_version
from broker.policy import load_agreement
from broker.service import topology_for
from broker.settings import Settings

__all__ = ["app"]

app = typer.Typer(help="The API documents.", no_args_is_help=True)

Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
]


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@app.command("asyncapi")
def asyncapi(output: Output = None) -> None:
    """The AsyncAPI 3.0 document for the agreement in the settings (docs/asyncapi.json)."""
    settings = Settings()
    topology = topology_for(settings, load_agreement(settings.agreement_path))
    _emit(render_asyncapi(asyncapi_document(topology, version=package_version())), output)


@app.command("openapi")
def openapi(output: Output = None) -> None:
    """The OpenAPI document of the HTTP API."""
    # Imported here: building the app needs FastAPI, which the other commands do not.
    from fastapi.openapi.utils import get_openapi  # noqa: PLC0415

    from broker.api.routes import ROUTERS  # noqa: PLC0415

    routes = [route for router in ROUTERS for route in router.routes]
    document = get_openapi(title="mash-broker", version=package_version(), routes=routes)
    _emit(json.dumps(document, indent=2) + "\n", output)
