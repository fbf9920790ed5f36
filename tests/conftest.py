"""Suite-wide fixtures: database backends (SQLite and PostgreSQL) and RabbitMQ vhosts."""

pytest_plugins = [
    "tests.dbfixtures",
    "tests.rabbitfixtures",
    # Keeps every log line of the run and fails it if one carries sample personal data.
    "tests.reliability.logcapture",
]
