"""``Idempotency-Key``: the first answer to an ingest request, kept and given again on retry.

Follows the IETF httpapi ``Idempotency-Key`` header draft:

- the first request with a key is processed and its answer (status and JSON body) stored
  per (party, key);
- a retry with the same key and the same request (adapter and body bytes) gets the stored
  answer, with ``Idempotent-Replayed: true``, and causes nothing;
- the same key with a different request is refused with 422;
- a retry while the first is still being processed is refused with 409.

Only definite answers (202 accepted, 422 rejected) are kept. When the first attempt fails
(database unavailable) its claim on the key is dropped, so the retry is processed afresh.
When the database is gone so that the claim cannot be dropped (or the answer stored),
the process remembers the claim and drops it first thing when the same key comes again,
so a partner retrying with its key after an outage is answered, not told 409 for a minute.
If a process dies between the ingest commit and storing its answer (or the retry reaches
another process), the claim goes stale after ``STALE_CLAIM``; the retry is then processed
again, and the pipeline's own de-duplication (identical bytes from the same party) keeps
that from having an effect.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, SQLModel, col

from broker.api.tables import IdempotencyRecord
from broker.db import delete_expired, session_scope
from broker.exceptions import TransportError

__all__ = [
    "KEY_PATTERN",
    "STALE_CLAIM",
    "Claim",
    "ClaimState",
    "IdempotencyStore",
    "request_digest",
]

#: Printable ASCII without spaces, 1-255 characters (UUIDs are the usual choice).
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
#: A claim with no answer after this long belongs to a request that died.
STALE_CLAIM = timedelta(seconds=60)


def request_digest(adapter: str, body: bytes) -> str:
    """What a retry must repeat: the adapter and the exact body bytes."""
    return hashlib.sha256(adapter.encode() + b"\x00" + body).hexdigest()


class ClaimState(StrEnum):
    """What ``IdempotencyStore.claim`` found."""

    #: The key is new (or its claim was stale): process the request.
    NEW = "new"
    #: A stored answer for the same request: give it again.
    REPLAY = "replay"
    #: The key was used for a different request.
    MISMATCH = "mismatch"
    #: The first request with this key is still being processed.
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a key; ``status_code``/``body`` set for a replay."""

    state: ClaimState
    status_code: int | None = None
    body: str | None = None


class IdempotencyStore:
    """Claims keys, stores answers and forgets them after ``ttl``, in ``idempotency_key``."""

    def __init__(self, sessions: sessionmaker[Session], *, ttl: timedelta) -> None:
        """Use ``sessions``; keep answers for ``ttl``."""
        self._sessions = sessions
        self._ttl = ttl
        # Claims of this process that an outage kept it from dropping: (party, key) ->
        # when (monotonic). Past STALE_CLAIM the stored claim is taken over anyway.
        self._orphans: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def claim(self, party: str, key: str, digest: str) -> Claim:
        """Claim ``key`` for ``party``'s request with ``digest``, or say why not.

        Raises:
            TransportError: the database is unavailable.
        """
        if self._orphaned(party, key):
            self._drop_unanswered(party, key)
            with self._lock:
                self._orphans.pop((party, key), None)
        now = datetime.now(UTC)
        for _attempt in range(2):
            with session_scope(self._sessions) as session:
                found = session.get(IdempotencyRecord, (party, key))
                if found is not None and found.expires_at <= now:
                    session.delete(found)
                    session.flush()
                    found = None
                if found is not None:
                    return self._existing(session, found, digest, now)
            try:
                with session_scope(self._sessions) as session:
                    session.add(
                        IdempotencyRecord(
                            party=party,
                            key=key,
                            request_sha256=digest,
                            created_at=now,
                            expires_at=now + self._ttl,
                        )
                    )
                return Claim(ClaimState.NEW)
            except IntegrityError:
                continue  # a concurrent request claimed it first: look again
        return Claim(ClaimState.IN_PROGRESS)

    @staticmethod
    def _existing(session: Session, found: IdempotencyRecord, digest: str, now: datetime) -> Claim:
        if found.request_sha256 != digest:
            return Claim(ClaimState.MISMATCH)
        if found.status_code is not None:
            return Claim(ClaimState.REPLAY, found.status_code, found.body)
        if now - found.created_at < STALE_CLAIM:
            return Claim(ClaimState.IN_PROGRESS)
        found.created_at = now  # take over the dead request's claim
        return Claim(ClaimState.NEW)

    def complete(self, party: str, key: str, status_code: int, body: str) -> None:
        """Store the answer to the claimed request.

        Raises:
            TransportError: the database is unavailable; the claim is remembered, to be
                dropped when the key comes again.
        """
        try:
            with session_scope(self._sessions) as session:
                found = session.get(IdempotencyRecord, (party, key))
                if found is not None:
                    found.status_code = status_code
                    found.body = body
        except TransportError:
            self._orphan(party, key)
            raise

    def release(self, party: str, key: str) -> None:
        """Drop an unanswered claim (the request failed), so a retry starts afresh.

        Raises:
            TransportError: the database is unavailable; the claim is remembered, to be
                dropped when the key comes again.
        """
        try:
            self._drop_unanswered(party, key)
        except TransportError:
            self._orphan(party, key)
            raise

    def _drop_unanswered(self, party: str, key: str) -> None:
        with session_scope(self._sessions) as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    col(IdempotencyRecord.party) == party,
                    col(IdempotencyRecord.key) == key,
                    col(IdempotencyRecord.status_code).is_(None),
                )
            )

    def _orphan(self, party: str, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._orphans[(party, key)] = now
            # Forget those past staleness (the stored claim is taken over then anyway),
            # so keys never retried do not pile up.
            cutoff = now - STALE_CLAIM.total_seconds()
            for old in [k for k, at in self._orphans.items() if at < cutoff]:
                del self._orphans[old]

    def _orphaned(self, party: str, key: str) -> bool:
        with self._lock:
            return (party, key) in self._orphans

    def prune(self, now: datetime | None = None) -> int:
        """Forget answers and claims that have expired; returns how many.

        Raises:
            TransportError: the database is unavailable.
        """
        table = SQLModel.metadata.tables[IdempotencyRecord.__tablename__]
        return delete_expired(
            self._sessions, table, now or datetime.now(UTC), including_cutoff=True
        )
