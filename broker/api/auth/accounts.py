"""The local staff account store: argon2id password hashes and roles, in ``staff_account``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from broker.api.auth.errors import CredentialRefused
from broker.api.auth.identity import StaffIdentity
from broker.api.auth.roles import Role
from broker.api.tables import StaffAccount
from broker.db import gated_at_first_write, session_scope
from broker.exceptions import ConfigurationError

__all__ = ["MIN_PASSWORD_LENGTH", "USERNAME_PATTERN", "AccountStore"]

#: User names are identifiers (they appear in the audit log): no spaces, no e-mail addresses.
USERNAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
#: NCSC guidance favours length over composition rules.
MIN_PASSWORD_LENGTH = 12
_MAX_PASSWORD_LENGTH = 1024


class AccountStore:
    """Creates, changes and checks local staff accounts."""

    def __init__(
        self, bind: Engine | sessionmaker[Session], *, hasher: PasswordHasher | None = None
    ) -> None:
        """Use the database behind ``bind``; ``hasher`` defaults to argon2id's defaults."""
        self._bind = bind
        self._hasher = hasher or PasswordHasher()
        # Verified against for unknown users, so that timing does not tell which exist.
        self._decoy = self._hasher.hash("decoy password for unknown users")

    def add(self, username: str, password: str, roles: Iterable[Role]) -> None:
        """Create an account.

        Raises:
            ConfigurationError: a bad user name, a short password, no role, or the user exists.
        """
        wanted = _roles(roles)
        _check_username(username)
        _check_password(password)
        with gated_at_first_write(self._bind) as session:
            if session.get(StaffAccount, username) is not None:
                raise ConfigurationError(f"staff account {username} already exists")
            session.add(
                StaffAccount(
                    username=username, password_hash=self._hasher.hash(password), roles=wanted
                )
            )

    def set_password(self, username: str, password: str) -> None:
        """Change a password; tokens issued before stop working.

        Raises:
            ConfigurationError: no such account, or a short password.
        """
        _check_password(password)
        with gated_at_first_write(self._bind) as session:
            account = _existing(session, username)
            account.password_hash = self._hasher.hash(password)
            _touch(account)

    def set_roles(self, username: str, roles: Iterable[Role]) -> None:
        """Replace an account's roles (effective on its next request)."""
        wanted = _roles(roles)
        with gated_at_first_write(self._bind) as session:
            account = _existing(session, username)
            account.roles = wanted
            _touch(account)

    def set_active(self, username: str, active: bool) -> None:
        """Disable or re-enable an account; disabling ends its sessions at once."""
        with gated_at_first_write(self._bind) as session:
            account = _existing(session, username)
            account.active = active
            _touch(account)

    def list(self) -> list[tuple[str, tuple[str, ...], bool]]:
        """Every account as (user name, roles, active), by name."""
        with session_scope(self._bind) as session:
            rows = session.exec(select(StaffAccount).order_by(col(StaffAccount.username))).all()
            return [(a.username, tuple(a.roles), a.active) for a in rows]

    def authenticate(self, username: str, password: str) -> tuple[StaffIdentity, int]:
        """Check a password; return the identity and the account's token version.

        Raises:
            CredentialRefused: unknown user, wrong password, or a disabled account (one
                reason code, ``login_failed``, for all three).
        """
        with gated_at_first_write(self._bind) as session:
            account = session.get(StaffAccount, username) if _valid_name(username) else None
            stored = account.password_hash if account is not None else self._decoy
            ok = self._verify(stored, password) and account is not None and account.active
            if not ok or account is None:
                # The account is named in the audit log only when it exists: a failed
                # login's user name may be a password typed into the wrong box.
                raise CredentialRefused(
                    "login_failed",
                    "staff login refused",
                    actor=account.username if account is not None else None,
                )
            if self._hasher.check_needs_rehash(stored):
                account.password_hash = self._hasher.hash(password)
            return _identity(account), account.token_version

    def current(self, username: str, token_version: int) -> StaffIdentity:
        """The identity of an account whose token says ``token_version``.

        Raises:
            CredentialRefused: the account is gone, disabled, or its token version moved on.
        """
        with session_scope(self._bind) as session:
            account = session.get(StaffAccount, username)
            if account is None or not account.active or account.token_version != token_version:
                raise CredentialRefused("session_revoked", "staff session no longer valid")
            return _identity(account)

    def _verify(self, stored: str, password: str) -> bool:
        if len(password) > _MAX_PASSWORD_LENGTH:
            return False
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _identity(account: StaffAccount) -> StaffIdentity:
    roles = frozenset(Role(r) for r in account.roles if r in Role._value2member_map_)
    return StaffIdentity(username=account.username, roles=roles)


def _existing(session: Session, username: str) -> StaffAccount:
    account = session.get(StaffAccount, username)
    if account is None:
        raise ConfigurationError(f"no staff account {username}")
    return account


def _touch(account: StaffAccount) -> None:
    account.token_version += 1
    account.updated_at = datetime.now(UTC)


def _roles(roles: Iterable[Role]) -> list[str]:
    wanted = sorted({Role(r).value for r in roles})
    if not wanted:
        raise ConfigurationError("a staff account needs at least one role")
    return wanted


def _valid_name(username: str) -> bool:
    return bool(USERNAME_PATTERN.match(username))


def _check_username(username: str) -> None:
    if not _valid_name(username):
        raise ConfigurationError(
            "user name: 2-64 characters, lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= _MAX_PASSWORD_LENGTH:
        raise ConfigurationError(
            f"password: at least {MIN_PASSWORD_LENGTH} characters "
            f"(and at most {_MAX_PASSWORD_LENGTH})"
        )
