"""What MASH staff do to alerts, episodes and links, each step kept in history and audited.

The workflow is new → acknowledged → assigned → decision recorded → closed (an alert may
be re-assigned, and decided straight after acknowledgement). Every step is written twice
in one transaction: a row in ``intake_action`` for the page, and an ``opened`` entry in
the audit chain whose ``reason`` names the step (``viewed``, ``acknowledged``,
``assigned``, ``decided:<decision>``, ``closed``, ``notified``, ``reviewed``,
``link_confirmed``, ``link_rejected``), with the person as ``actor``: the chain records
who touched which alert and what they did, in ids and codes only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, col

from broker.audit import AuditKind, AuditRecord
from broker.exceptions import BrokerError
from broker.intake.clocks import ClockKind
from broker.intake.context import IntakeContext
from broker.intake.store import IntakeStore, resolve_child
from broker.intake.tables import (
    ActionKind,
    Decision,
    IntakeAction,
    IntakeAlert,
    IntakeChild,
    IntakeClock,
    IntakeEpisode,
    IntakeNotification,
    IntakeTracker,
    LinkReview,
    ReviewStatus,
)
from broker.models import AlertStatus, MashAlert

__all__ = ["ALLOWED_FROM", "Actor", "IntakeNotFound", "TransitionRefused", "Triage"]

#: For each status, the statuses an alert may move to it from.
ALLOWED_FROM: dict[AlertStatus, frozenset[AlertStatus]] = {
    AlertStatus.ACKNOWLEDGED: frozenset({AlertStatus.NEW}),
    AlertStatus.ASSIGNED: frozenset({AlertStatus.ACKNOWLEDGED, AlertStatus.ASSIGNED}),
    AlertStatus.DECIDED: frozenset({AlertStatus.ACKNOWLEDGED, AlertStatus.ASSIGNED}),
    AlertStatus.CLOSED: frozenset({AlertStatus.DECIDED}),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """The member of staff acting: their user name (an id) and the role they act in."""

    name: str
    role: str


class IntakeNotFound(BrokerError):
    """No alert, episode, clock or review with that id (the message names the id)."""

    code = "intake_not_found"


class TransitionRefused(BrokerError):
    """The step does not follow from where the alert (or review) is now."""

    code = "intake_transition_refused"


class Triage:
    """Staff actions on the intake store; each call runs in the caller's transaction."""

    def __init__(self, context: IntakeContext) -> None:
        self.context = context
        self.store = IntakeStore(context)

    # ------------------------------------------------------------------ helpers

    def _alert(self, session: Session, alert_id: int) -> tuple[MashAlert, IntakeAlert | None]:
        alert = session.get(MashAlert, alert_id)
        if alert is None or alert.recipient != self.context.party:
            raise IntakeNotFound(f"alert {alert_id}: not found")
        return alert, session.get(IntakeAlert, alert_id)

    def _record(
        self,
        session: Session,
        *,
        action: ActionKind,
        actor: Actor,
        at: datetime,
        alert: MashAlert | None = None,
        reason: str | None = None,
        detail: str | None = None,
        **row: object,
    ) -> IntakeAction:
        audit_detail = detail or (f"alert_id={alert.id}" if alert is not None else None)
        audit_detail = f"{audit_detail} role={actor.role}" if audit_detail else f"role={actor.role}"
        entry = self.context.service.audit.append(
            session,
            kind=AuditKind.OPENED,
            actor=actor.name,
            party=self.context.party,
            event_id=alert.event_id if alert is not None else None,
            reason=reason or action.value,
            detail=audit_detail,
        )
        history = IntakeAction(
            alert_id=alert.id if alert is not None else None,
            action=action.value,
            actor=actor.name,
            at=at,
            audit_seq=entry.seq,
            **row,  # type: ignore[arg-type]
        )
        session.add(history)
        return history

    def _move(
        self,
        session: Session,
        alert_id: int,
        to: AlertStatus,
        actor: Actor,
        *,
        decision: str | None = None,
        assignee: str | None = None,
        reason: str | None = None,
    ) -> tuple[IntakeAlert | None, datetime]:
        alert, triage = self._alert(session, alert_id)
        before = AlertStatus(alert.status)
        if before not in ALLOWED_FROM[to]:
            raise TransitionRefused(
                f"alert {alert_id}: cannot go from {before.value} to {to.value}"
            )
        now = self.context.clock()
        alert.status = to
        session.add(alert)
        self._record(
            session,
            action=ActionKind(to.value),
            actor=actor,
            at=now,
            alert=alert,
            reason=reason,
            child_key=triage.child_key if triage else None,
            episode_id=triage.episode_id if triage else None,
            from_status=before.value,
            to_status=to.value,
            decision=decision,
            assignee=assignee,
        )
        return triage, now

    # ------------------------------------------------------------------ the workflow

    def record_view(self, session: Session, alert_ids: Iterable[int], actor: Actor) -> None:
        """Audit that ``actor`` read the content of these alerts (detail page, timeline).

        The entries are appended in one call, so a timeline of many alerts costs one lock.
        """
        now = self.context.clock()
        records: list[AuditRecord] = []
        rows: list[IntakeAction] = []
        for alert_id in alert_ids:
            alert, triage = self._alert(session, alert_id)
            records.append(
                self.context.service.audit.record(
                    kind=AuditKind.OPENED,
                    actor=actor.name,
                    party=self.context.party,
                    event_id=alert.event_id,
                    reason=ActionKind.VIEWED.value,
                    detail=f"alert_id={alert_id} role={actor.role}",
                )
            )
            rows.append(
                IntakeAction(
                    alert_id=alert_id,
                    child_key=triage.child_key if triage else None,
                    action=ActionKind.VIEWED.value,
                    actor=actor.name,
                    at=now,
                )
            )
        entries = self.context.service.audit.append_many(session, records)
        for row, entry in zip(rows, entries, strict=True):
            row.audit_seq = entry.seq
            session.add(row)

    def acknowledge(self, session: Session, alert_id: int, actor: Actor) -> None:
        """New → acknowledged: a person has seen it and owns its triage."""
        triage, now = self._move(session, alert_id, AlertStatus.ACKNOWLEDGED, actor)
        if triage is not None:
            triage.acknowledged_at = now
            session.add(triage)

    def assign(self, session: Session, alert_id: int, actor: Actor, assignee: str) -> None:
        """Acknowledged (or assigned) → assigned to ``assignee``, a staff user name."""
        triage, now = self._move(session, alert_id, AlertStatus.ASSIGNED, actor, assignee=assignee)
        if triage is not None:
            triage.assigned_to, triage.assigned_at = assignee, now
            session.add(triage)

    def decide(self, session: Session, alert_id: int, actor: Actor, decision: Decision) -> None:
        """Record the MASH decision; this meets the alert's one-working-day clock."""
        triage, now = self._move(
            session,
            alert_id,
            AlertStatus.DECIDED,
            actor,
            decision=decision.value,
            reason=f"decided:{decision.value}",
        )
        if triage is not None:
            triage.decision, triage.decided_at = decision.value, now
            session.add(triage)
        clock = session.get(IntakeClock, f"{ClockKind.MASH_DECISION.value}:{alert_id}")
        if clock is not None and clock.met_at is None:
            clock.met_at = now
            session.add(clock)

    def close(self, session: Session, alert_id: int, actor: Actor) -> None:
        """Decided → closed."""
        triage, now = self._move(session, alert_id, AlertStatus.CLOSED, actor)
        if triage is not None:
            triage.closed_at = now
            session.add(triage)

    # ------------------------------------------------------------------ clocks

    def record_notification(
        self,
        session: Session,
        episode_id: str,
        authority: str,
        actor: Actor,
        *,
        notified_at: datetime | None = None,
    ) -> None:
        """Record that ``authority`` was told the child went missing; refreshes the clocks."""
        episode = session.get(IntakeEpisode, episode_id)
        if episode is None:
            raise IntakeNotFound(f"episode {episode_id}: not found")
        now = self.context.clock()
        session.add(
            IntakeNotification(
                episode_id=episode_id,
                authority=authority,
                notified_at=notified_at or now,
                recorded_by=actor.name,
            )
        )
        self._record(
            session,
            action=ActionKind.NOTIFIED,
            actor=actor,
            at=now,
            detail=f"correlation_id={episode_id} borough={authority}",
            child_key=episode.child_key,
            episode_id=episode_id,
        )
        session.flush()
        self.store.refresh_episode_clocks(session, episode)

    def record_review(self, session: Session, clock_id: str, actor: Actor) -> None:
        """Record the MASH's review of a repeat-missing pattern (meets its clock)."""
        clock = session.get(IntakeClock, clock_id)
        if clock is None or clock.kind != ClockKind.REPEAT_MISSING.value:
            raise IntakeNotFound(f"repeat-missing clock {clock_id}: not found")
        if clock.met_at is not None:
            raise TransitionRefused(f"clock {clock_id}: already reviewed")
        now = self.context.clock()
        clock.met_at = now
        session.add(clock)
        self._record(
            session,
            action=ActionKind.REVIEWED,
            actor=actor,
            at=now,
            detail=f"correlation_id={clock.instance or clock.subject}",
            child_key=clock.child_key,
            episode_id=clock.instance,
        )

    # ------------------------------------------------------------------ link reviews

    def resolve_review(
        self,
        session: Session,
        review_id: int,
        actor: Actor,
        *,
        same_as: str | None,
    ) -> None:
        """Decide a flagged link: ``same_as`` a candidate child, or ``None`` for different.

        Confirming merges the provisional child into the chosen one: its alerts, episodes,
        tracker spells, clocks and history move under that child's key.
        """
        review = session.get(LinkReview, review_id)
        if review is None:
            raise IntakeNotFound(f"link review {review_id}: not found")
        if review.status != ReviewStatus.OPEN.value:
            raise TransitionRefused(f"link review {review_id}: already {review.status}")
        alert, _ = self._alert(session, review.alert_id)
        now = self.context.clock()
        if same_as is None:
            review.status = ReviewStatus.REJECTED.value
            action = ActionKind.LINK_REJECTED
        else:
            if same_as not in review.candidates:
                raise TransitionRefused(
                    f"link review {review_id}: child {same_as} is not a candidate"
                )
            self._merge(session, review.child_key, resolve_child(session, same_as))
            review.status = ReviewStatus.CONFIRMED.value
            action = ActionKind.LINK_CONFIRMED
        review.resolved_by, review.resolved_at = actor.name, now
        session.add(review)
        self._record(
            session,
            action=action,
            actor=actor,
            at=now,
            alert=alert,
            child_key=review.child_key,
        )

    def _merge(self, session: Session, provisional: str, target: str) -> None:
        if provisional == target:
            return
        child = session.get(IntakeChild, provisional)
        kept = session.get(IntakeChild, target)
        if child is None or kept is None:
            raise IntakeNotFound(f"child {provisional} or {target}: not found")
        for name in ("nhs_number", "paris_id", "police_person_ref"):
            if getattr(kept, name) is None:
                setattr(kept, name, getattr(child, name))
        child.merged_into = target
        session.add_all([child, kept])
        # Repeat-missing clocks are per child: the merged child's open ones are recomputed.
        session.execute(
            delete(IntakeClock).where(
                col(IntakeClock.kind) == ClockKind.REPEAT_MISSING.value,
                col(IntakeClock.subject) == provisional,
                col(IntakeClock.met_at).is_(None),
            )
        )
        for table in (IntakeAlert, IntakeEpisode, IntakeTracker, IntakeClock, IntakeAction):
            session.execute(
                update(table).where(col(table.child_key) == provisional).values(child_key=target)
            )
        session.flush()
        self.store.refresh_repeat_clocks(session, target)
