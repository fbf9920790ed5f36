"""Running the intake store's blocking work from async routes, with its errors as HTTP answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException
from sqlmodel import Session

from broker.db import gated_at_first_write
from broker.intake.context import IntakeContext
from broker.intake.triage import IntakeNotFound, TransitionRefused

__all__ = ["in_transaction"]

T = TypeVar("T")


async def in_transaction(intake: IntakeContext, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one database transaction in a worker thread.

    Raises:
        HTTPException: 404 for an unknown id, 409 for a step that does not follow.
    """

    def run() -> T:
        with gated_at_first_write(intake.service.sessions) as session:
            return work(session)

    try:
        return await asyncio.to_thread(run)
    except IntakeNotFound as exc:
        raise HTTPException(status_code=404) from exc
    except TransitionRefused as exc:
        raise HTTPException(status_code=409) from exc
