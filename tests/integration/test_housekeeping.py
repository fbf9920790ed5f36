"""The running service forgets expired token ids and idempotency answers on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel
from structlog.testing import capture_logs

from broker import runtime as runtime_module
from broker.api.tables import IdempotencyRecord
from broker.exceptions import TransportError
from broker.housekeeping import Forgotten, forget_expired
from broker.runtime import Runtime
from broker.service import Service
from broker.settings import Settings
from broker.topology import Topology

REPLAY = SQLModel.metadata.tables["replay_seen"]
IDEMPOTENCY = SQLModel.metadata.tables[IdempotencyRecord.__tablename__]


@pytest.fixture
def tidy_service(broker_settings: Settings) -> Iterator[Service]:
    """The service with housekeeping every 50 ms."""
    database = broker_settings.database.model_copy(update={"housekeeping_interval_seconds": 0.05})
    loaded = Service.load(broker_settings.model_copy(update={"database": database}))
    try:
        yield loaded
    finally:
        loaded.engine.dispose()


@pytest.fixture(autouse=True)
def _no_rabbitmq_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def declared(settings: object, topology: Topology) -> None:
        return None

    monkeypatch.setattr(runtime_module, "ensure_topology", declared)


def _remember(service: Service, now: datetime, *, expired: str, current: str) -> None:
    """One expired and one current row in each table."""
    with service.engine.begin() as connection:
        connection.execute(
            sa.insert(REPLAY),
            [
                {"jti": expired, "expires_at": now - timedelta(minutes=1)},
                {"jti": current, "expires_at": now + timedelta(days=1)},
            ],
        )
        connection.execute(
            sa.insert(IDEMPOTENCY),
            [
                {
                    "party": "police",
                    "key": key,
                    "request_sha256": "0" * 64,
                    "status_code": 202,
                    "body": "{}",
                    "created_at": now - timedelta(days=2),
                    "expires_at": at,
                }
                for key, at in (
                    (expired, now - timedelta(minutes=1)),
                    (current, now + timedelta(days=1)),
                )
            ],
        )


def _kept(service: Service) -> tuple[set[str], set[str]]:
    with service.engine.connect() as connection:
        ids = set(connection.execute(sa.select(REPLAY.c.jti)).scalars())
        keys = set(connection.execute(sa.select(IDEMPOTENCY.c.key)).scalars())
    return ids, keys


def test_one_round_removes_what_expired_and_counts_it(service: Service) -> None:
    now = datetime.now(UTC)
    _remember(service, now, expired="old", current="live")
    assert forget_expired(service, now) == Forgotten(replay_ids=1, idempotency_answers=1)
    assert _kept(service) == ({"live"}, {"live"})
    assert forget_expired(service, now).total == 0


async def test_the_housekeeping_part_removes_expired_rows_while_the_service_runs(
    tidy_service: Service,
) -> None:
    async with Runtime(tidy_service, ["housekeeping"]):
        # Rows that expire while it runs go at a later round, not only at start.
        _remember(tidy_service, datetime.now(UTC), expired="old", current="live")
        for _ in range(100):
            if _kept(tidy_service) == ({"live"}, {"live"}):
                break
            await asyncio.sleep(0.05)
        assert _kept(tidy_service) == ({"live"}, {"live"})


async def test_a_round_that_fails_is_logged_and_the_next_goes_on(
    tidy_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[int] = []

    def flaky(service: Service) -> Forgotten:
        rounds.append(1)
        if len(rounds) == 1:
            raise TransportError("database unavailable or timed out (OperationalError)")
        return forget_expired(service)

    monkeypatch.setattr(runtime_module, "forget_expired", flaky)
    _remember(tidy_service, datetime.now(UTC), expired="old", current="live")
    with capture_logs() as logs:
        async with Runtime(tidy_service, ["housekeeping"]):
            for _ in range(100):
                if len(rounds) >= 2 and _kept(tidy_service) == ({"live"}, {"live"}):
                    break
                await asyncio.sleep(0.05)
    assert _kept(tidy_service) == ({"live"}, {"live"})
    events = [(log["event"], log.get("error")) for log in logs if "housekeeping" in log["event"]]
    assert events == [("housekeeping_failed", "transport")]
    forgotten = [log for log in logs if log["event"] == "expired_forgotten"]
    assert [(log["replay_ids"], log["idempotency_answers"]) for log in forgotten] == [(1, 1)]


async def test_an_interval_of_zero_turns_it_off(
    broker_settings: Settings,
) -> None:
    database = broker_settings.database.model_copy(update={"housekeeping_interval_seconds": 0})
    service = Service.load(broker_settings.model_copy(update={"database": database}))
    try:
        _remember(service, datetime.now(UTC), expired="old", current="live")
        async with Runtime(service, ["housekeeping"]):
            await asyncio.sleep(0.3)
        assert _kept(service) == ({"old", "live"}, {"old", "live"})
    finally:
        service.engine.dispose()
