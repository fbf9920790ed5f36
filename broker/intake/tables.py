"""The intake store's tables: children (blinded), triage, history, episodes, tracker, clocks.

No names, dates of birth, NHS numbers or addresses are kept here: a child is a random
key plus HMACs of its identifiers (``broker.intake.linking.blind_identity``), and what a
person reads comes from the alert's JWE, opened when they open the alert. Episode and
clock times, authorities' ONS codes, risk grades and tracker levels are kept in clear
because the clocks and KPIs are computed from them; they sit beside a pseudonymous key.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from broker.models import BIG_KEY, UtcDateTime, utc_now

__all__ = [
    "ActionKind",
    "Decision",
    "IntakeAction",
    "IntakeAlert",
    "IntakeChild",
    "IntakeClock",
    "IntakeEpisode",
    "IntakeNotification",
    "IntakeTracker",
    "LinkKind",
    "LinkReview",
    "ReviewStatus",
]


class Decision(StrEnum):
    """The decisions a MASH records on a contact."""

    NO_FURTHER_ACTION = "no_further_action"
    EARLY_HELP = "early_help"
    STRATEGY_DISCUSSION = "strategy_discussion"
    S47_ENQUIRY = "s47_enquiry"
    REFERRAL_OTHER_AUTHORITY = "referral_other_authority"

    @property
    def label(self) -> str:
        """The decision as staff write it."""
        return _DECISION_LABELS[self]


_DECISION_LABELS = {
    Decision.NO_FURTHER_ACTION: "No further action",
    Decision.EARLY_HELP: "Early help",
    Decision.STRATEGY_DISCUSSION: "Strategy discussion",
    Decision.S47_ENQUIRY: "s.47 enquiry",
    Decision.REFERRAL_OTHER_AUTHORITY: "Referral to another authority",
}


class LinkKind(StrEnum):
    """How an alert's child was found among the children the store knows."""

    LINKED = "linked"
    NEW = "new"
    POSSIBLE = "possible"
    CONFLICT = "conflict"
    NONE = "none"


class ActionKind(StrEnum):
    """What a person (or the broker) did, as kept in an alert's history."""

    VIEWED = "viewed"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    DECIDED = "decided"
    CLOSED = "closed"
    LINK_CONFIRMED = "link_confirmed"
    LINK_REJECTED = "link_rejected"
    NOTIFIED = "notified"
    REVIEWED = "reviewed"


class ReviewStatus(StrEnum):
    """Where a flagged link is in its human review."""

    OPEN = "open"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class IntakeChild(SQLModel, table=True):
    """A child the MASH knows: a random key and keyed hashes of its identifiers.

    ``merged_into`` is set when a person confirmed that this child is another known child;
    the store then reads and writes under that child's key.
    """

    __tablename__ = "intake_child"
    __table_args__ = (
        sa.Index("ix_intake_child_weak", "family_name", "given_name", "date_of_birth"),
    )

    child_key: str = Field(primary_key=True, sa_type=sa.String(32))
    nhs_number: str | None = Field(default=None, sa_type=sa.String(64), index=True)
    paris_id: str | None = Field(default=None, sa_type=sa.String(64), index=True)
    police_person_ref: str | None = Field(default=None, sa_type=sa.String(64), index=True)
    family_name: str | None = Field(default=None, sa_type=sa.String(64))
    given_name: str | None = Field(default=None, sa_type=sa.String(64))
    date_of_birth: str | None = Field(default=None, sa_type=sa.String(64))
    merged_into: str | None = Field(default=None, sa_type=sa.String(32))
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())


class IntakeAlert(SQLModel, table=True):
    """Triage state of one MASH alert (its status lives on ``mash_alert.status``)."""

    __tablename__ = "intake_alert"

    alert_id: int = Field(
        primary_key=True,
        sa_type=BIG_KEY,
        foreign_key="mash_alert.id",
        sa_column_kwargs={"autoincrement": False},
    )
    child_key: str | None = Field(default=None, sa_type=sa.String(32), index=True)
    episode_id: str | None = Field(default=None, sa_type=sa.String(64), index=True)
    occurred_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    band: str = Field(sa_type=sa.String(16))
    band_rank: int = Field(default=0)
    score: int = Field(default=0)
    #: The factors that counted ("police risk grade high"), never the child.
    reasons: list[str] = Field(default_factory=list, sa_type=sa.JSON())
    link: str = Field(default=LinkKind.NONE.value, sa_type=sa.String(16))
    linked_by: str | None = Field(default=None, sa_type=sa.String(32))
    #: What the event states about its missing episode (``EpisodeFact.to_json``): times,
    #: grades and authorities, no identifier. ``None`` for other events (and for alerts
    #: stored before it was kept).
    episode_fact: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON())
    assigned_to: str | None = Field(default=None, sa_type=sa.String(64))
    decision: str | None = Field(default=None, sa_type=sa.String(32))
    acknowledged_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    assigned_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime())


class IntakeAction(SQLModel, table=True):
    """One step in an alert's (or episode's, or child's) history, with who and when.

    Each row has its twin in the audit chain (``audit_seq``), where it is tamper-evident.
    """

    __tablename__ = "intake_action"

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_KEY)
    alert_id: int | None = Field(default=None, sa_type=sa.BigInteger(), index=True)
    child_key: str | None = Field(default=None, sa_type=sa.String(32), index=True)
    episode_id: str | None = Field(default=None, sa_type=sa.String(64))
    action: str = Field(sa_type=sa.String(32))
    from_status: str | None = Field(default=None, sa_type=sa.String(16))
    to_status: str | None = Field(default=None, sa_type=sa.String(16))
    decision: str | None = Field(default=None, sa_type=sa.String(32))
    assignee: str | None = Field(default=None, sa_type=sa.String(64))
    actor: str = Field(sa_type=sa.String(64))
    at: datetime = Field(sa_type=UtcDateTime())
    audit_seq: int | None = Field(default=None, sa_type=sa.BigInteger())


class IntakeEpisode(SQLModel, table=True):
    """A missing episode as folded from its events (``broker.intake.records.EpisodeRecord``)."""

    __tablename__ = "intake_episode"

    episode_id: str = Field(primary_key=True, sa_type=sa.String(64))
    child_key: str = Field(sa_type=sa.String(32), index=True)
    reported_at: datetime = Field(sa_type=UtcDateTime())
    risk_grade: str | None = Field(default=None, sa_type=sa.String(24))
    found_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    returned_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    missing_from: str | None = Field(default=None, sa_type=sa.String(9))
    home_authority: str | None = Field(default=None, sa_type=sa.String(9))
    looked_after: bool = Field(default=False)
    placed_in: str | None = Field(default=None, sa_type=sa.String(9))
    rhi_offered_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    rhi_completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    rhi_declined_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())


class IntakeNotification(SQLModel, table=True):
    """An authority was told that a child had gone missing (for the notification clocks)."""

    __tablename__ = "intake_notification"

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_KEY)
    episode_id: str = Field(sa_type=sa.String(64), index=True)
    authority: str = Field(sa_type=sa.String(9))
    notified_at: datetime = Field(sa_type=UtcDateTime())
    #: A person's user name, or ``broker`` when the record is this broker's own receipt.
    recorded_by: str = Field(sa_type=sa.String(64))


class IntakeTracker(SQLModel, table=True):
    """One spell of a child on the CSE tracker (``broker.intake.records.TrackerRecord``)."""

    __tablename__ = "intake_tracker"
    __table_args__ = (sa.UniqueConstraint("child_key", "identified_on"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_KEY)
    child_key: str = Field(sa_type=sa.String(32), index=True)
    identified_on: date = Field(sa_type=sa.Date())
    level: int = Field()
    removed_on: date | None = Field(default=None, sa_type=sa.Date())
    removal_reason: str | None = Field(default=None, sa_type=sa.String(32))
    #: Dated level changes as ``[["YYYY-MM-DD", level], ...]``.
    history: list[list[object]] = Field(default_factory=list, sa_type=sa.JSON())
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())


class IntakeClock(SQLModel, table=True):
    """A statutory or practice clock (``broker.intake.clocks.Clock``) as last computed."""

    __tablename__ = "intake_clock"

    clock_id: str = Field(primary_key=True, sa_type=sa.String(160))
    kind: str = Field(sa_type=sa.String(32))
    subject: str = Field(sa_type=sa.String(64))
    child_key: str | None = Field(default=None, sa_type=sa.String(32), index=True)
    alert_id: int | None = Field(default=None, sa_type=sa.BigInteger(), index=True)
    episode_id: str | None = Field(default=None, sa_type=sa.String(64), index=True)
    started_at: datetime = Field(sa_type=UtcDateTime())
    due_at: datetime = Field(sa_type=UtcDateTime(), index=True)
    met_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    authority: str | None = Field(default=None, sa_type=sa.String(9))
    instance: str | None = Field(default=None, sa_type=sa.String(64))
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())


class LinkReview(SQLModel, table=True):
    """A possible or conflicting match, kept apart until a person decides."""

    __tablename__ = "intake_link_review"

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_KEY)
    alert_id: int = Field(sa_type=sa.BigInteger(), index=True)
    #: The child the alert was filed under meanwhile.
    child_key: str = Field(sa_type=sa.String(32), index=True)
    candidates: list[str] = Field(default_factory=list, sa_type=sa.JSON())
    kind: str = Field(sa_type=sa.String(16))
    agreeing: list[str] = Field(default_factory=list, sa_type=sa.JSON())
    conflicting: list[str] = Field(default_factory=list, sa_type=sa.JSON())
    status: str = Field(default=ReviewStatus.OPEN.value, sa_type=sa.String(16), index=True)
    resolved_by: str | None = Field(default=None, sa_type=sa.String(64))
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime())
