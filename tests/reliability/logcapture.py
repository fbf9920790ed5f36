"""A pytest plugin: every log line the suite writes is kept, and checked for sample personal data.

Loaded from tests/conftest.py for the whole session. It records each line structlog renders
(whatever processors a test configured, since every renderer ends in ``PrintLogger``), each
standard-library log record, and the log records pytest captured for each test. When the session
ends, no line may contain a personal value of the sample scenarios (names, NHS numbers,
dates of birth, postcodes, address lines); if one does, the run fails and names the test.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import pytest
import structlog

from broker.samples.scenario import make_scenario

#: The scenario seeds the suite renders samples from.
SEEDS = range(1, 11)
_PRINT_METHODS = (
    "msg", "log", "debug", "info", "warn", "warning",
    "fatal", "failure", "err", "error", "critical", "exception",
)  # fmt: skip


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Lines:
    """Log lines seen so far, each with the test that wrote it."""

    def __init__(self) -> None:
        self.current = "(session)"
        self.lines: list[tuple[str, str]] = []

    def add(self, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                self.lines.append((self.current, line))


LINES = _Lines()


@lru_cache(maxsize=1)
def personal_values() -> tuple[str, ...]:
    """Every personal value of the sample children, in the forms partner messages use."""
    values: set[str] = set()
    for seed in SEEDS:
        for child in make_scenario(seed).children:
            born = child.date_of_birth
            values.update(
                {
                    f"{child.given_name} {child.family_name}",
                    f"{child.family_name}, {child.given_name}",
                    f"{child.family_name}^{child.given_name}",
                    child.family_name,
                    child.nhs_number,
                    f"{child.nhs_number[:3]} {child.nhs_number[3:6]} {child.nhs_number[6:]}",
                    born.isoformat(),
                    born.strftime("%d/%m/%Y"),
                    born.strftime("%Y%m%d"),
                    child.postcode,
                    child.address_line,
                }
            )
    return tuple(sorted(values, key=len, reverse=True))


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    alternatives = "|".join(re.escape(v) for v in personal_values())
    # Whole tokens only: a date's digits inside a longer hex id are not a date of birth.
    return re.compile(rf"(?<![\w/-])(?:{alternatives})(?![\w/-])")


def leaks(lines: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(test, value found, line) for each line that carries a sample personal value."""
    pattern = _pattern()
    found = []
    for test, line in lines:
        match = pattern.search(_ANSI.sub("", line))
        if match:
            found.append((test, match.group(0), line))
    return found


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            LINES.add(f"{record.name} {record.levelname} {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a bad record must not break the test it came from
            LINES.add(f"{record.name} {record.levelname} {record.msg!r}")


def _recording(original: Any) -> Any:
    def msg(self: structlog.PrintLogger, message: str) -> None:
        LINES.add(str(message))
        original(self, message)

    return msg


def pytest_configure(config: pytest.Config) -> None:
    recorder = _recording(structlog.PrintLogger.msg)
    for name in _PRINT_METHODS:
        setattr(structlog.PrintLogger, name, recorder)
    logging.getLogger().addHandler(_Handler())


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    LINES.current = nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, content in report.sections:
        if name.startswith("Captured log"):
            LINES.add(content)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found = leaks(LINES.lines)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"personal-data check: {len(LINES.lines)} log lines, {len(found)} with sample "
            "personal data"
        )
        for test, value, line in found[:20]:
            reporter.write_line(f"  {test}: {value!r} in: {line[:200]}", red=True)
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
