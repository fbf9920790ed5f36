"""Logging set-up: JSON off a terminal, ISO UTC timestamps, level filtering."""

from __future__ import annotations

import json

import pytest
import structlog
from structlog.testing import capture_logs

from broker.logging import configure_logging, get_logger


def test_json_lines_with_utc_timestamp(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    try:
        get_logger("test").info("event_received", event_id="e-1")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["event"] == "event_received"
        assert record["event_id"] == "e-1"
        assert record["component"] == "test"
        assert record["timestamp"].endswith("Z")
    finally:
        structlog.reset_defaults()


def test_level_filtering(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", json=True)
    try:
        get_logger("test").info("quiet")
        get_logger("test").warning("loud")
        err = capsys.readouterr().err
        assert "quiet" not in err
        assert "loud" in err
    finally:
        structlog.reset_defaults()


def test_context_variables_are_merged(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    structlog.contextvars.bind_contextvars(request_id="r-9")
    try:
        get_logger("test").info("hello")
        record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert record["request_id"] == "r-9"
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()


def test_capture_logs_sees_bound_fields() -> None:
    with capture_logs() as logs:
        get_logger("test").info("hello", event_id="e-2")
    assert logs == [{"component": "test", "event_id": "e-2", "event": "hello", "log_level": "info"}]


@pytest.mark.parametrize("as_json", [True, False])
def test_a_logged_traceback_does_not_show_local_variables(
    capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    configure_logging("info", json=as_json)

    def handle(family_name: str) -> None:
        raise RuntimeError("a bug while handling an alert")

    name = "Thorn" + "low"  # a sample family name, kept out of the traceback's source lines
    try:
        try:
            handle(name)
        except RuntimeError:
            get_logger("test").exception("alert_failed", alert_id="a-1")
        err = capsys.readouterr().err
        assert "a bug while handling an alert" in err
        assert "alert_failed" in err
        assert name not in err
    finally:
        structlog.reset_defaults()
