"""``mash-broker adapt``: translate a partner's native file into canonical events (JSON lines)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from adapters import ADAPTER_NAMES, AdapterContext, AdapterError, Problem, get_adapter
from adapters.base import Adapter, StreamingAdapter, check_size
from schemas.events import Event

_NAMES = ", ".join(ADAPTER_NAMES)


def adapt(
    adapter_name: Annotated[str, typer.Argument(metavar="ADAPTER", help=f"One of: {_NAMES}.")],
    file: Annotated[Path, typer.Argument(help="The native message or export; - for stdin.")],
    source: Annotated[
        str | None, typer.Option(help="The sending party's id (default: the adapter's).")
    ] = None,
) -> None:
    """Print the canonical events in FILE as JSON lines.

    Exits 2 on bad input with one line per problem naming its place; events from good rows
    of a bulk file are still printed.
    """
    try:
        adapter = get_adapter(adapter_name)
    except KeyError:
        typer.echo(f"unknown adapter {adapter_name!r}; choose one of: {_NAMES}", err=True)
        raise typer.Exit(2) from None
    context = AdapterContext(source_agency=source or adapter.default_source)
    try:
        problems = list(_translate(adapter, file, context))
    except AdapterError as exc:
        problems = list(exc.problems)
    except OSError as exc:
        typer.echo(f"{file}: cannot read ({exc.strerror})", err=True)
        raise typer.Exit(2) from None
    for problem in problems:
        typer.echo(str(problem), err=True)
    if problems:
        raise typer.Exit(2)


def _translate(adapter: Adapter, file: Path, context: AdapterContext) -> Iterator[Problem]:
    """Print each event as it is made; yield the problems."""
    if isinstance(adapter, StreamingAdapter) and str(file) != "-":
        with file.open("rb") as handle:
            for item in adapter.parse_stream(handle, context):
                if isinstance(item, Event):
                    sys.stdout.write(item.model_dump_json() + "\n")
                else:
                    yield item
        return
    raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    check_size(adapter.name, raw, adapter.max_bytes)
    for event in adapter.parse(raw, context):
        sys.stdout.write(event.model_dump_json() + "\n")


def register(app: typer.Typer) -> None:
    """Add the ``adapt`` command to ``app``."""
    app.command("adapt")(adapt)
