"""Opening a disclosure sealed for the MASH, as its intake accepts it: no database, no I/O.

Shared by the intake consumer (in its storing thread) and the prepare processes
(``amqp.prepare_processes``), which open the MASH's deliveries before they reach the
storing thread. The token's id is not remembered here: the transaction that stores the
alert remembers it, and refuses a replay there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from broker import envelope
from broker.envelope import EnvelopeLimits
from broker.keys import PartyKeys
from broker.service import Service
from schemas import DisclosureClaims

__all__ = ["DisclosureOpener", "Opened"]


@dataclass(frozen=True, slots=True)
class Opened:
    """A disclosure opened and verified; its token id still to be remembered."""

    claims: DisclosureClaims
    #: (token id, remember until), for the storing transaction's replay check.
    jti: tuple[str, datetime]


class _Deferred:
    """The envelope's replay store: keeps the id ``open`` accepted instead of storing it."""

    def __init__(self) -> None:
        self.jti: tuple[str, datetime] | None = None

    def check_and_remember(self, jti: str, expires_at: datetime) -> None:
        self.jti = (jti, expires_at)


class DisclosureOpener:
    """Opens disclosures sealed for one MASH party by this broker (and no one else)."""

    def __init__(self, service: Service, party: str) -> None:
        self.keys = PartyKeys.load(service.keys_dir, party, service.registry)
        self.registry = service.registry
        self.limits = EnvelopeLimits.from_settings(service.settings.crypto)
        #: Only this broker seals for its MASH; a partner's own signature is refused.
        self.issuers = frozenset({service.settings.crypto.service_party})

    def open(self, body: bytes, now: datetime) -> Opened:
        """Decrypt and verify ``body`` as of ``now``.

        Raises:
            SecurityError: the token failed a check (its ``code`` says which).
        """
        deferred = _Deferred()
        claims = envelope.open(
            body,
            recipient=self.keys,
            registry=self.registry,
            replay=deferred,
            limits=self.limits,
            now=now,
            issuers=self.issuers,
        )
        if deferred.jti is None:  # pragma: no cover - open remembers every token it accepts
            raise RuntimeError("a token was accepted without its id being remembered")
        return Opened(claims, deferred.jti)
