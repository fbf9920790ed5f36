"""``mash-broker run``: the whole service in one process, or chosen parts of it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from broker.logging import configure_logging, get_logger
from broker.runtime import ALL_PARTS, Runtime
from broker.service import Service
from broker.settings import Settings

_PARTS = ", ".join(ALL_PARTS)


def run(
    only: Annotated[
        list[str] | None,
        typer.Option(help=f"Run only these parts (repeatable): {_PARTS}."),
    ] = None,
) -> None:
    """Run the broker until SIGINT or SIGTERM: ingest workers, relay, MASH intake."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    service = Service.load(settings)
    try:
        runtime = Runtime(service, only or ALL_PARTS)
        asyncio.run(_serve(runtime))
    finally:
        service.engine.dispose()


async def _serve(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stopping.set)
    await runtime.start()
    get_logger("cli").info("running", parts=",".join(runtime.parts))
    try:
        await stopping.wait()
    finally:
        await runtime.stop()


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to ``app``."""
    app.command("run")(run)
