"""An ``Idempotency-Key`` claim that an outage kept the process from dropping.

The first attempt fails because the database went away, so its claim can be neither
dropped nor answered; the partner retries with the same key once the database is back
and must be processed, not refused 409 for as long as the claim takes to go stale.
The outage is the driver failing every statement (``before_cursor_execute``), which the
storage layer sees as it sees a stopped server: ``OperationalError``, i.e. ``TransportError``.
``tests/reliability/test_database_outage.py`` does the same against a stopped PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from broker.api.idempotency import ClaimState, IdempotencyStore
from broker.db import make_sessionmaker
from broker.exceptions import TransportError

PARTY, KEY, DIGEST = "tvp-police", "retry-1", "d" * 64


class Outage:
    """Makes every statement on ``engine`` fail while ``down``."""

    def __init__(self, engine: Engine) -> None:
        self.down = False
        sa.event.listen(engine, "before_cursor_execute", self._check)

    def _check(self, *_args: Any, **_kwargs: Any) -> None:
        if self.down:
            raise sa.exc.OperationalError("statement", {}, ConnectionError("server gone"))


@pytest.fixture
def store_and_outage(db_engine: Engine) -> tuple[IdempotencyStore, Outage]:
    outage = Outage(db_engine)
    return IdempotencyStore(make_sessionmaker(db_engine), ttl=timedelta(hours=1)), outage


def test_a_claim_the_outage_kept_is_dropped_when_the_key_comes_again(
    store_and_outage: tuple[IdempotencyStore, Outage],
) -> None:
    store, outage = store_and_outage
    assert store.claim(PARTY, KEY, DIGEST).state is ClaimState.NEW
    outage.down = True
    with pytest.raises(TransportError):
        store.release(PARTY, KEY)  # the request failed and so does dropping its claim
    with pytest.raises(TransportError):
        store.claim(PARTY, KEY, DIGEST)  # a retry during the outage: still unavailable
    outage.down = False
    assert store.claim(PARTY, KEY, DIGEST).state is ClaimState.NEW
    # Taken again: a concurrent second retry is the one that waits.
    assert store.claim(PARTY, KEY, DIGEST).state is ClaimState.IN_PROGRESS


def test_an_answer_the_outage_kept_from_being_stored_frees_the_key_too(
    store_and_outage: tuple[IdempotencyStore, Outage],
) -> None:
    store, outage = store_and_outage
    assert store.claim(PARTY, KEY, DIGEST).state is ClaimState.NEW
    outage.down = True
    with pytest.raises(TransportError):
        store.complete(PARTY, KEY, 202, "{}")
    outage.down = False
    assert store.claim(PARTY, KEY, DIGEST).state is ClaimState.NEW
    store.complete(PARTY, KEY, 202, '{"accepted": true}')
    again = store.claim(PARTY, KEY, DIGEST)
    assert (again.state, again.status_code, again.body) == (
        ClaimState.REPLAY,
        202,
        '{"accepted": true}',
    )


def test_another_processes_claim_is_still_in_progress(
    store_and_outage: tuple[IdempotencyStore, Outage], db_engine: Engine
) -> None:
    """Only the process that lost the claim knows it is dead; others wait for staleness."""
    store, outage = store_and_outage
    other = IdempotencyStore(make_sessionmaker(db_engine), ttl=timedelta(hours=1))
    assert store.claim(PARTY, KEY, DIGEST).state is ClaimState.NEW
    outage.down = True
    with pytest.raises(TransportError):
        store.release(PARTY, KEY)
    outage.down = False
    assert other.claim(PARTY, KEY, DIGEST).state is ClaimState.IN_PROGRESS
