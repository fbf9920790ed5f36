"""Why a credential or a request was refused: typed errors with a stable reason code."""

from __future__ import annotations

from broker.exceptions import PolicyDenied, SecurityError

__all__ = ["AccessDenied", "CredentialRefused"]


class CredentialRefused(SecurityError):
    """A bearer token, session cookie or password that does not authenticate (401).

    ``reason`` is a short code for the audit log and metrics (``expired``, ``audience``,
    ``alg_refused`` ...). The message is for the operator's log: it names kids and party
    ids only. Neither ever reaches the client, which gets a generic answer.
    """

    code = "unauthenticated"

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        kid: str | None = None,
        claimed_party: str | None = None,
        actor: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        #: The staff account concerned, set only when it exists.
        self.actor = actor
        #: The token's kid, set only when it is a registered key id.
        self.kid = kid
        #: The party the token claimed to be, set only when it is a party of the agreement.
        self.claimed_party = claimed_party


class AccessDenied(PolicyDenied):
    """An authenticated caller asked for something it may not have (403)."""

    code = "forbidden"

    def __init__(
        self, reason: str, message: str, *, party: str | None = None, actor: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        #: The authenticated partner refused, if a partner.
        self.party = party
        #: The authenticated member of staff refused, if staff.
        self.actor = actor
