"""``mash-broker deadletter``: see what a dead-letter queue holds and why, and re-drive it."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from broker.exceptions import BrokerError
from broker.logging import configure_logging
from broker.messaging.deadletter import DeadLetterReport, list_dead_letters, redrive
from broker.settings import Settings

__all__ = ["app"]

app = typer.Typer(help="Inspect and re-drive dead-letter queues.", no_args_is_help=True)

QueueArgument = Annotated[
    str, typer.Argument(metavar="QUEUE", help="The work queue (or its .dlq), e.g. mash.E06000040.")
]


@app.command("list")
def list_command(
    queue: QueueArgument,
    limit: Annotated[int, typer.Option(min=1, help="The most messages to read.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List dead letters: ids, types, reasons and counts; never message bodies."""
    settings = _settings()
    try:
        report = asyncio.run(list_dead_letters(settings.amqp, queue, limit=limit))
    except BrokerError as exc:
        typer.echo(f"deadletter list: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(_as_dict(report), indent=2))
        return
    typer.echo(f"{report.dead_letter_queue}: {report.total} message(s)")
    for letter in report.letters:
        when = letter.dead_lettered_at.isoformat() if letter.dead_lettered_at else "-"
        typer.echo(
            f"  {letter.message_id or '-'}  type={letter.event_type or '-'}  "
            f"reason={letter.reason!r}  deaths={letter.deaths}  redrives={letter.redrives}  "
            f"at={when}  bytes={letter.size}"
        )
    if report.letters:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(report.by_reason.items()))
        typer.echo(f"by reason: {reasons}")
    if len(report.letters) < report.total:
        typer.echo(f"(showing {len(report.letters)} of {report.total}; use --limit)")


@app.command("redrive")
def redrive_command(
    queue: QueueArgument,
    limit: Annotated[
        int | None, typer.Option(min=1, help="The most messages to move (default: all).")
    ] = None,
) -> None:
    """Move dead letters back onto their queue, each removed only once confirmed there."""
    settings = _settings()
    try:
        result = asyncio.run(redrive(settings.amqp, queue, limit=limit))
    except BrokerError as exc:
        typer.echo(f"deadletter redrive: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"moved {result.moved} message(s) back to {result.queue}; "
        f"{result.failed} failed; {result.remaining} left in the dead-letter queue"
    )
    if result.failed:
        raise typer.Exit(1)


def _as_dict(report: DeadLetterReport) -> dict[str, object]:
    return {
        "queue": report.queue,
        "dead_letter_queue": report.dead_letter_queue,
        "total": report.total,
        "by_reason": report.by_reason,
        "letters": [
            {
                "message_id": letter.message_id,
                "event_type": letter.event_type,
                "reason": letter.reason,
                "queue": letter.queue,
                "deaths": letter.deaths,
                "redrives": letter.redrives,
                "dead_lettered_at": letter.dead_lettered_at.isoformat()
                if letter.dead_lettered_at
                else None,
                "size": letter.size,
            }
            for letter in report.letters
        ],
    }


def _settings() -> Settings:
    """Settings for one command, with logs sent to standard error, away from the output."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings
