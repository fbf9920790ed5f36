"""What the intake store needs once: the MASH's keys, the link key, clocks, calendar, weights."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from broker import envelope
from broker.envelope import EnvelopeLimits
from broker.intake.clocks import ClockConfig
from broker.intake.linkkey import load_link_key
from broker.intake.priority import PriorityWeights
from broker.intake.workingdays import WorkingCalendar
from broker.keys import PartyKeys
from broker.models import MashAlert, utc_now
from broker.service import Service
from broker.settings import IntakeSettings
from schemas import DisclosureClaims
from schemas.events import Event

__all__ = ["IntakeContext", "clock_config", "parse_event", "working_calendar"]


def clock_config(settings: IntakeSettings) -> ClockConfig:
    """The clocks' configuration from the intake settings."""
    return ClockConfig(
        return_interview_within=timedelta(hours=settings.return_interview_hours),
        notify_within=timedelta(minutes=settings.notify_within_minutes),
        repeat_threshold=settings.repeat_missing_threshold,
        repeat_window=timedelta(days=settings.repeat_missing_window_days),
    )


def working_calendar(settings: IntakeSettings) -> WorkingCalendar:
    """The MASH's working days from the intake settings."""
    return WorkingCalendar.from_config(
        holidays=settings.holidays,
        extra_closures=settings.extra_closures,
        opening=settings.opening,
        closing=settings.closing,
    )


def parse_event(document: Mapping[str, Any]) -> Event | None:
    """The canonical event of a disclosure, or ``None`` when minimisation left it partial.

    Every rule of the agreement that shares with the MASH shares whole events; a partial
    one is still stored and shown, but cannot be linked or scored.
    """
    try:
        return Event.model_validate(document)
    except ValidationError:
        return None


class _AlreadyChecked:
    """Replay store for re-reading a stored alert: its jti was checked when it arrived."""

    def check_and_remember(self, jti: str, expires_at: datetime) -> None:
        """Accept: reading a stored token again is not receiving it again."""


@dataclass(frozen=True)
class IntakeContext:
    """The intake store's fixed inputs, loaded once per process.

    Attributes:
        service: the loaded service (database, audit log, key registry, settings).
        keys: the MASH party's private keys, to re-open stored alerts.
        link_key: the HMAC key of the blinded child index.
        clocks: clock settings.
        calendar: the MASH's working days.
        weights: priority weights.
        clock: the current UTC time (injected in tests).
    """

    service: Service
    keys: PartyKeys
    link_key: bytes
    clocks: ClockConfig
    calendar: WorkingCalendar
    weights: PriorityWeights = field(default_factory=PriorityWeights)
    clock: Callable[[], datetime] = utc_now

    @classmethod
    def load(cls, service: Service, *, clock: Callable[[], datetime] = utc_now) -> IntakeContext:
        """Load the MASH's keys and the link key (made on first use outside production).

        Raises:
            ConfigurationError: a key is missing or unusable, or a setting is invalid.
        """
        settings = service.settings
        return cls(
            service=service,
            keys=PartyKeys.load(service.keys_dir, settings.intake.mash_party, service.registry),
            link_key=load_link_key(
                service.keys_dir,
                settings.crypto.service_party,
                create=settings.environment != "production",
            ),
            clocks=clock_config(settings.intake),
            calendar=working_calendar(settings.intake),
            clock=clock,
        )

    @property
    def borough(self) -> str:
        """This borough's ONS code."""
        return self.service.settings.borough

    @property
    def party(self) -> str:
        """The MASH party id."""
        return self.service.settings.intake.mash_party

    def open_alert(self, alert: MashAlert) -> DisclosureClaims:
        """Decrypt and verify a stored alert's JWE, as it was when it arrived.

        Raises:
            SecurityError: the token no longer opens (tampered row, or a key removed).
        """
        return envelope.open(
            alert.token,
            recipient=self.keys,
            registry=self.service.registry,
            replay=_AlreadyChecked(),
            limits=EnvelopeLimits.from_settings(self.service.settings.crypto),
            now=alert.received_at,
        )
