"""The HTTP API's own tables: staff accounts and stored answers to idempotent requests."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from broker.models import UtcDateTime, utc_now

__all__ = ["IdempotencyRecord", "StaffAccount"]


class StaffAccount(SQLModel, table=True):
    """A member of staff of a single-site install: user name, argon2 hash and roles.

    A deployment with its own identity provider does not need this table (see
    ``docs/operations-auth.md``).
    """

    __tablename__ = "staff_account"

    #: The login name; an identifier, shown in the audit log as the actor.
    username: str = Field(primary_key=True, sa_type=sa.String(64))
    #: The argon2id hash in PHC string form, never the password.
    password_hash: str = Field(sa_type=sa.String(255))
    #: Role names (``broker.api.auth.Role`` values), sorted.
    roles: list[str] = Field(default_factory=list, sa_type=sa.JSON())
    active: bool = Field(default=True)
    #: Bumped when the password changes or the account is disabled; tokens issued
    #: before carry the old value and stop working at once.
    token_version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to an ingest request carrying an ``Idempotency-Key``.

    ``status_code`` is null while the first request is still being processed. The body
    holds event ids and located problems only, never message content.
    """

    __tablename__ = "idempotency_key"

    party: str = Field(primary_key=True, sa_type=sa.String(64))
    key: str = Field(primary_key=True, sa_type=sa.String(255))
    #: SHA-256 of the adapter name and the request body: a retry must match it.
    request_sha256: str = Field(sa_type=sa.String(64))
    status_code: int | None = Field(default=None)
    body: str | None = Field(default=None, sa_type=sa.Text())
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())
    expires_at: datetime = Field(sa_type=UtcDateTime(), index=True)
