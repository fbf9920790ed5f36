"""``mash-broker demo``: run the demo scenario end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from broker.demo import run_demo, run_envelope_demo
from broker.logging import configure_logging
from broker.settings import Settings

DEMO_DIR = Path("var/demo")


def demo(
    keys_dir: Annotated[Path, typer.Option(help="Where the demo keys live.")] = DEMO_DIR / "keys",
    samples: Annotated[Path, typer.Option(help="The sample messages to publish.")] = Path(
        "samples"
    ),
    envelope_only: Annotated[
        bool, typer.Option(help="Only seal one example event for the MASH and open it.")
    ] = False,
    serve: Annotated[
        bool,
        typer.Option(
            help="Keep the service running afterwards, with the HTTP API and the MASH "
            "intake pages, and print a demo sign-in (development only)."
        ),
    ] = False,
) -> None:
    """Publish the sample partner messages through RabbitMQ and show where they went.

    Generates demo keys for every party, starts the broker's workers against a fresh demo
    database, publishes every sample through the AMQP ingest, and prints what each
    recipient received, what was refused and why, and whether the audit chain verifies.
    """
    configure_logging("warning")
    settings = Settings()
    settings.crypto.keys_dir = keys_dir
    if envelope_only:
        run_envelope_demo(settings, keys_dir)
        return
    database = keys_dir.parent / "mash.db"
    for stale in (database, database.with_suffix(".db-wal"), database.with_suffix(".db-shm")):
        stale.unlink(missing_ok=True)
    settings.database.url = SecretStr(f"sqlite:///{database}")
    run_demo(settings, samples, serve=serve)


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""
    app.command("demo")(demo)
