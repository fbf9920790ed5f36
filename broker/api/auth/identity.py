"""Who a member of staff is once authenticated, and the seam an identity provider plugs into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from broker.api.auth.roles import Role

__all__ = ["StaffIdentity", "StaffVerifier"]


@dataclass(frozen=True, slots=True)
class StaffIdentity:
    """An authenticated member of staff.

    Attributes:
        username: the account's identifier (an id, written to the audit log as the actor).
        roles: what the person may do.
        provider: where the identity came from (``local``, or the deployment's provider).
    """

    username: str
    roles: frozenset[Role]
    provider: str = "local"

    def has_any(self, roles: frozenset[Role] | set[Role]) -> bool:
        """Whether the person holds at least one of ``roles``."""
        return bool(self.roles & roles)


@runtime_checkable
class StaffVerifier(Protocol):
    """Turns a staff bearer token (or session cookie value) into an identity.

    The local account store implements it (``LocalStaffVerifier``); a deployment with an
    OpenID Connect provider supplies its own implementation that checks the provider's
    access token and maps its groups to roles (``docs/operations-auth.md``). Called in a
    worker thread, so it may block on I/O.
    """

    def verify(self, token: str) -> StaffIdentity:
        """The identity the token proves.

        Raises:
            CredentialRefused: the token is not valid (with a reason code).
        """
        ...
