"""structlog set-up: contextvars, ISO UTC timestamps, JSON off a terminal, console on one."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging", "get_logger"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog once for the process.

    Args:
        level: the minimum level name (``debug``, ``info``, ``warning``, ``error``).
        json: force JSON (True) or console (False) rendering; None decides by whether
            standard error is a terminal.
    """
    if json is None:
        json = not sys.stderr.isatty()
    # Tracebacks are printed plainly: a "pretty" traceback shows local variables, which
    # would put the personal data a function was handling into the log.
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info if json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*args: object) -> structlog.PrintLogger:
    """A logger on whatever standard error is now (a test runner may swap it)."""
    return structlog.PrintLogger(file=sys.stderr)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to a component name. Log ids only, never personal data."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
