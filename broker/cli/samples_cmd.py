"""``mash-broker samples``: write the synthetic partner messages of the borough scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.samples.generate import write_samples

app = typer.Typer(help="Synthetic partner messages for the demo scenario.", no_args_is_help=True)


@app.command("generate")
def generate(
    seed: Annotated[int, typer.Option(help="Scenario seed (same seed, same files).")] = 1,
    out: Annotated[Path, typer.Option(help="Where to write the files.")] = Path("samples"),
) -> None:
    """Write police, health and Paris sample messages for the scenario under OUT."""
    for path in write_samples(seed, out):
        typer.echo(str(path))
