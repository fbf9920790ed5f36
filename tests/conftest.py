"""Suite-wide fixtures: database backends (SQLite and PostgreSQL) and RabbitMQ vhosts."""

import pytest

from broker.logging import configure_logging

pytest_plugins = [
    "tests.dbfixtures",
    "tests.rabbitfixtures",
    # Keeps every log line of the run and fails it if one carries sample personal data.
    "tests.reliability.logcapture",
    # Fails a test in which the service wrote to a SQLite file without the write gate.
    "tests.reliability.gatecheck",
]


@pytest.fixture(autouse=True)
def _service_logging() -> None:
    """Every test logs as the service does (structlog's own defaults print local variables
    in tracebacks); tests that configure logging themselves do so after this."""
    configure_logging("debug", json=True)
