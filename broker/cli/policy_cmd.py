"""``mash-broker policy``: check an agreement, and explain what it does with one event."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from broker.exceptions import ConfigurationError
from broker.policy import (
    Severity,
    check_file,
    evaluate,
    explain_dict,
    explain_text,
    read_agreement_file,
)
from schemas.events import Event

__all__ = ["app"]

app = typer.Typer(
    help="The information-sharing agreement: check it, explain its decisions.", no_args_is_help=True
)

#: An event file is one canonical event; anything much larger is not one.
_MAX_EVENT_BYTES = 1024 * 1024

_ExistingFile = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The agreement YAML.")
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@app.command("check")
def check(
    file: _ExistingFile,
    today: Annotated[
        str | None, typer.Option(help="Judge expiry as of this UK date (YYYY-MM-DD).")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Fail on warnings as well as errors.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print findings as JSON.")] = False,
) -> None:
    """Lint the agreement FILE: exit 0 when clean, 1 with located messages when not."""
    try:
        on = date.fromisoformat(today) if today else None
    except ValueError:
        raise _fail(f"--today {today!r} is not a date (YYYY-MM-DD)", 2) from None
    try:
        findings = check_file(file, today=on)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        for finding in findings:
            typer.echo(finding.format(file.name))
    errors = sum(f.severity is Severity.ERROR for f in findings)
    warnings = len(findings) - errors
    if not as_json:
        verdict = "clean" if not findings else f"{errors} error(s), {warnings} warning(s)"
        typer.echo(f"{file.name}: {verdict}", err=True)
    if errors or (strict and warnings):
        raise typer.Exit(1)


def _read_event(path: Path) -> Event:
    try:
        if path.stat().st_size > _MAX_EVENT_BYTES:
            raise _fail(f"{path.name} is over {_MAX_EVENT_BYTES} bytes; not one event", 2)
        return Event.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise _fail(f"cannot read {path.name}: {exc.strerror}", 2) from exc
    except ValidationError as exc:
        # Locations and messages only: the input values may be personal data.
        problems = [
            f"  {'.'.join(str(p) for p in e['loc']) or '(event)'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise _fail(
            "\n".join([f"{path.name} is not a valid canonical event:", *problems]), 2
        ) from None


@app.command("explain")
def explain(
    file: _ExistingFile,
    event_file: Annotated[
        Path,
        typer.Argument(
            metavar="EVENT.json",
            exists=True,
            dir_okay=False,
            readable=True,
            help="One canonical event as JSON.",
        ),
    ],
    at: Annotated[
        str | None,
        typer.Option(help="Decide as of this instant (ISO 8601 with offset); default now."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Show, for the event in EVENT.json, who receives which fields under which rule and basis,
    and every refusal with its reason. Field names only, never values."""
    try:
        when = datetime.fromisoformat(at) if at else datetime.now(UTC)
    except ValueError:
        raise _fail(f"--at {at!r} is not an ISO 8601 instant", 2) from None
    if when.tzinfo is None:
        raise _fail("--at needs a UTC offset, e.g. 2026-11-20T21:30:00+00:00", 2)
    try:
        parsed = read_agreement_file(file)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from exc
    if parsed.agreement is None:
        lines = [f.format(parsed.source) for f in parsed.findings]
        raise _fail("\n".join([f"{file.name} is not a valid agreement:", *lines]), 2)
    event = _read_event(event_file)
    decision = evaluate(parsed.agreement, event, when.astimezone(UTC))
    if as_json:
        typer.echo(json.dumps(explain_dict(decision, parsed.agreement), indent=2))
    else:
        typer.echo(explain_text(decision, parsed.agreement), nl=False)
