"""Housekeeping: the service forgets what it no longer needs to remember.

Two tables gain rows with every message while the service runs and decide nothing once
those rows have expired:

- ``replay_seen``: the id of every client assertion and every disclosure accepted, kept
  until its token could no longer be used (a replay after that is refused as expired).
  At 200 partner requests a second that is 17 million ids a day.
- ``idempotency_key``: each partner's answers to retried POSTs, kept for
  ``api.idempotency_ttl_seconds``.

An expired row is already ignored where it is read (an expired id or key is taken over in
place), so removing it changes no answer; it only keeps the tables, their indexes and the
database file from growing without end. ``mash-broker run`` does this every
``database.housekeeping_interval_seconds`` (the ``housekeeping`` part; ``--only
housekeeping`` runs it on its own), in transactions of ``broker.db.EXPIRED_CHUNK_ROWS``
rows that queue at the write gate with the other writers.

The inbox, the outbox, the raw messages and the audit log are not touched here: how long
they are kept is the partnership's retention decision, not an expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.db import DbReplayStore
from broker.models import utc_now
from broker.service import Service

__all__ = ["Forgotten", "forget_expired"]


@dataclass(frozen=True)
class Forgotten:
    """How many expired rows one round of housekeeping removed."""

    replay_ids: int
    idempotency_answers: int

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return self.replay_ids + self.idempotency_answers


def forget_expired(service: Service, now: datetime | None = None) -> Forgotten:
    """Remove the expired token ids and idempotency answers, a chunk at a time.

    Args:
        service: the loaded service (its database).
        now: the moment before which rows have expired (default now, UTC).

    Raises:
        TransportError: the database is unavailable (what was removed before stays
            removed; the next round goes on from there).
    """
    # Imported here, as the runtime imports the API: only when it is used.
    from broker.api.idempotency import IdempotencyStore  # noqa: PLC0415

    moment = now or utc_now()
    replay_ids = DbReplayStore(service.engine).prune(moment)
    ttl = timedelta(seconds=service.settings.api.idempotency_ttl_seconds)
    answers = IdempotencyStore(service.sessions, ttl=ttl).prune(moment)
    return Forgotten(replay_ids=replay_ids, idempotency_answers=answers)
