"""``Idempotency-Key``: the first answer to an ingest request, kept and given again on retry.

Follows the IETF httpapi ``Idempotency-Key`` header draft:

- the first request with a key is processed and its answer (status and JSON body) stored
  per (party, key);
- a retry with the same key and the same request (adapter and body bytes) gets the stored
  answer, with ``Idempotent-Replayed: true``, and causes nothing;
- the same key with a different request is refused with 422;
- a retry while the first is still being processed is refused with 409.

The answer is written in the transaction that stores the request's effect (``answer_hook``,
a ``broker.pipeline.StoreHook``): one commit holds both, so there is no moment at which
the effect is stored and its answer is not, and a request costs no transaction of its own
for its key (each was a commit and a disk flush outside the ingest's group commit, and at
200 requests a second they queued into seconds). Only definite answers (202 accepted, 422
rejected) are kept; a request that fails stores neither, so its retry is processed afresh.

There is no look-up before the request is processed: ``AnswerHook.before`` finds a key
answered before under the write lock, the message is then not stored, and the request is
given the stored answer (``look``), or 422 for another request. A retry is thus prepared
again for nothing, which is rare; the usual request, with a new key, costs no database
round trip of its own.

"Still being processed" is known where it can be: a process remembers the keys of its own
requests in flight (``begin``/``end``). A retry that reaches another process while the first
is running is processed too; whichever commits second finds the key answered and is given
that answer, so the effect happens once either way.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, SQLModel

from broker.api.tables import IdempotencyRecord
from broker.db import delete_expired, session_scope
from broker.pipeline import IngestResult

__all__ = [
    "KEY_PATTERN",
    "AnswerHook",
    "Claim",
    "ClaimState",
    "IdempotencyStore",
    "request_digest",
]

#: Printable ASCII without spaces, 1-255 characters (UUIDs are the usual choice).
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")

_TABLE = SQLModel.metadata.tables[IdempotencyRecord.__tablename__]
# The hook's statements, built once: they run in every ingest transaction with a key.
_THIS_KEY = (_TABLE.c.party == sa.bindparam("party"), _TABLE.c.key == sa.bindparam("key"))
_SELECT_STATE = sa.select(_TABLE.c.status_code, _TABLE.c.expires_at).where(*_THIS_KEY)
_DELETE_KEY = sa.delete(_TABLE).where(*_THIS_KEY)
_INSERT = sa.insert(_TABLE)
_SELECT_ANSWER = sa.select(_TABLE.c.request_sha256, _TABLE.c.status_code, _TABLE.c.body).where(
    *_THIS_KEY, _TABLE.c.expires_at > sa.bindparam("now")
)


def request_digest(adapter: str, body: bytes) -> str:
    """What a retry must repeat: the adapter and the exact body bytes."""
    return hashlib.sha256(adapter.encode() + b"\x00" + body).hexdigest()


class ClaimState(StrEnum):
    """What looking a key up found."""

    #: The key is new (or its answer expired): process the request.
    NEW = "new"
    #: A stored answer for the same request: give it again.
    REPLAY = "replay"
    #: The key was used for a different request.
    MISMATCH = "mismatch"
    #: The first request with this key is still being processed.
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of looking a key up; ``status_code``/``body`` set for a replay."""

    state: ClaimState
    status_code: int | None = None
    body: str | None = None


class IdempotencyStore:
    """Looks keys up, writes answers with their effects, forgets them after ``ttl``."""

    def __init__(self, sessions: sessionmaker[Session], *, ttl: timedelta) -> None:
        """Use ``sessions``; keep answers for ``ttl``."""
        self._sessions = sessions
        self._ttl = ttl
        # This process's requests in flight, by (party, key).
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def look(self, party: str, key: str, digest: str) -> Claim:
        """What the key's stored answer, if any, says about a request with ``digest``.

        Raises:
            TransportError: the database is unavailable.
        """
        wanted = {"party": party, "key": key, "now": datetime.now(UTC)}
        with session_scope(self._sessions) as session:
            row = session.connection().execute(_SELECT_ANSWER, wanted).first()
        if row is None or row.status_code is None:
            # No answer, or a claim of an earlier version never answered: not a key in use.
            return Claim(ClaimState.NEW)
        if row.request_sha256 != digest:
            return Claim(ClaimState.MISMATCH)
        return Claim(ClaimState.REPLAY, row.status_code, row.body)

    def begin(self, party: str, key: str) -> bool:
        """Mark the key's request in flight in this process; False if one already is."""
        with self._lock:
            if (party, key) in self._in_flight:
                return False
            self._in_flight.add((party, key))
            return True

    def end(self, party: str, key: str) -> None:
        """The key's request in this process has its answer (or failed)."""
        with self._lock:
            self._in_flight.discard((party, key))

    def answer_hook(
        self,
        party: str,
        key: str,
        digest: str,
        render: Callable[[IngestResult], tuple[int, str]],
    ) -> AnswerHook:
        """The ``StoreHook`` that writes the request's answer (``render``ed from its result)."""
        return AnswerHook(party, key, digest, render, self._ttl)

    def prune(self, now: datetime | None = None) -> int:
        """Forget answers that have expired; returns how many.

        Raises:
            TransportError: the database is unavailable.
        """
        return delete_expired(
            self._sessions, _TABLE, now or datetime.now(UTC), including_cutoff=True
        )


@dataclass(frozen=True)
class AnswerHook:
    """A ``broker.pipeline.StoreHook``: the key's answer, written with the request's effect.

    ``before`` holds the request back if the key was answered meanwhile (by a request in
    another process) and clears an expired answer; ``after`` writes the answer. Both run in
    the ingest transaction, under the write lock on SQLite; on PostgreSQL two such inserts
    racing meet the primary key, the batch is stored again one message at a time, and
    ``before`` then sees the other's answer.
    """

    party: str
    key: str
    digest: str
    render: Callable[[IngestResult], tuple[int, str]]
    ttl: timedelta

    def before(self, connection: Connection) -> bool:
        """False if the key has an answer already (the request is then told it)."""
        this_key = {"party": self.party, "key": self.key}
        row = connection.execute(_SELECT_STATE, this_key).first()
        if row is None:
            return True
        if row.status_code is not None and row.expires_at > datetime.now(UTC):
            return False
        # An expired answer, or an unanswered claim of an earlier version, gives way.
        connection.execute(_DELETE_KEY, this_key)
        return True

    def after(self, connection: Connection, result: IngestResult) -> None:
        """Store the answer the request is about to be given."""
        status, body = self.render(result)
        now = datetime.now(UTC)
        connection.execute(
            _INSERT,
            {
                "party": self.party,
                "key": self.key,
                "request_sha256": self.digest,
                "status_code": status,
                "body": body,
                "created_at": now,
                "expires_at": now + self.ttl,
            },
        )
