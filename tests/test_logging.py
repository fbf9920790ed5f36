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
