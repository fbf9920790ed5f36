"""``mash-broker schemas``: export the JSON Schemas and print example events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schemas import EventType, example_event, write_json_schemas

app = typer.Typer(
    help="The canonical schema: JSON Schema export and example events.", no_args_is_help=True
)

_TYPES = ", ".join(t.value for t in EventType)


@app.command("export")
def export(directory: Annotated[Path, typer.Argument(help="Where to write the files.")]) -> None:
    """Write one JSON Schema file per canonical model into DIRECTORY."""
    for path in write_json_schemas(directory):
        typer.echo(str(path))


@app.command("example")
def example(
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help=f"One of: {_TYPES}.")],
) -> None:
    """Print a valid example event of body type TYPE as JSON."""
    try:
        kind = EventType(event_type)
    except ValueError:
        typer.echo(f"unknown event type {event_type!r}; choose one of: {_TYPES}", err=True)
        raise typer.Exit(2) from None
    typer.echo(example_event(kind).model_dump_json(indent=2))
