"""The ``mash-broker`` command line: one Typer app with a sub-app per concern."""

from __future__ import annotations

import typer

from broker.cli import (
    adapt_cmd,
    api_cmd,
    audit_cmd,
    crossborder_cmd,
    deadletter_cmd,
    demo_cmd,
    envelope_cmd,
    keys_cmd,
    policy_cmd,
    run_cmd,
    samples_cmd,
    schemas_cmd,
    staff_cmd,
    topology_cmd,
)
from broker.service import agreement_recipients as _agreement_recipients

__all__ = ["app", "main"]

app = typer.Typer(
    name="mash-broker",
    help="Secure information sharing between MASH partners.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(schemas_cmd.app, name="schemas")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(envelope_cmd.app, name="envelope")
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(samples_cmd.app, name="samples")
app.add_typer(topology_cmd.app, name="topology")
app.add_typer(deadletter_cmd.app, name="deadletter")
app.add_typer(staff_cmd.app, name="staff")
app.add_typer(api_cmd.app, name="api")
app.add_typer(crossborder_cmd.app, name="crossborder")
adapt_cmd.register(app)
demo_cmd.register(app)
run_cmd.register(app)


topology_cmd.set_recipient_source(_agreement_recipients)


def main() -> None:
    """Console-script entry point."""
    app()
