"""Triage of a batch gives what triage of its alerts one by one gives.

The consumer stores whatever arrived together in one transaction (group commit), and the
triage of a batch shares that transaction: later alerts of the batch must see what earlier
ones filed (a child made, identifiers filled in, an episode folded, a clock raised, a
review opened, a notification recorded) exactly as if each had been committed alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session

from broker.db import session_scope
from broker.intake.consumer import IntakeConsumer, StoreOutcome
from broker.intake.tables import (
    IntakeAlert,
    IntakeChild,
    IntakeClock,
    IntakeEpisode,
    IntakeNotification,
    IntakeTracker,
    LinkReview,
)
from broker.models import MashAlert
from broker.service import Service
from schemas.events import (
    CaseStatus,
    CseLevel,
    CseTrackerEntry,
    Event,
    MissingFound,
    MissingReported,
    MissingUpdated,
    ReturnHomeInterview,
    RiskGrade,
)
from schemas.person import Child, LookedAfter
from tests.broker.intake.conftest import intake_settings, seal_for_mash
from tests.broker.intake.factories import SLOUGH, WAM, child, event, utc
from tests.dbfixtures import fresh_database

T0 = utc(2026, 9, 1, 20, 0)


def _reported(episode: str, at: datetime, subject: Child, grade: RiskGrade) -> Event:
    body = MissingReported(episode_id=episode, risk_grade=grade, reported_at=at, missing_from=WAM)
    return event(body, subject=subject, at=at, correlation_id=episode)


def _found(episode: str, at: datetime, subject: Child) -> Event:
    body = MissingFound(episode_id=episode, found_at=at, returned_at=at)
    return event(body, subject=subject, at=at, correlation_id=episode)


def _scenario() -> list[Event]:
    """Alerts whose triage depends on one another, in the order they arrive."""
    ava = child(given="Ava", family="Brindlecombe", born=date(2011, 3, 4), nhs=41)
    # Ava's namesake with another NHS number: a conflict for a person to resolve.
    other = child(given="Ava", family="Brindlecombe", born=date(2011, 3, 4), nhs=43)
    # Known first by the Paris id alone, then with the NHS number too (filled in).
    ben_paris = child(
        given="Ben", family="Oakshott", born=date(2010, 8, 9), nhs=None, paris="P-1001"
    )
    ben = child(given="Ben", family="Oakshott", born=date(2010, 8, 9), nhs=42, paris="P-1001")
    # A looked-after child of this borough placed in Slough, missing from there.
    cara = child(
        given="Cara",
        family="Fenwright",
        born=date(2012, 1, 2),
        nhs=44,
        looked_after=LookedAfter(responsible_authority=WAM, placed_in=SLOUGH),
    )
    cara_reported = _reported("EP-C1", T0, cara, RiskGrade.MEDIUM)
    cara_reported = cara_reported.model_copy(
        update={"body": cara_reported.body.model_copy(update={"missing_from": SLOUGH})}
    )
    # Known first from case statuses alone: the second must find the child the first made.
    eli = child(given="Eli", family="Marchbank", born=date(2014, 6, 7), nhs=46)
    eli_filled = child(
        given="Eli", family="Marchbank", born=date(2014, 6, 7), nhs=46, paris="P-2002"
    )
    events: list[Event] = [
        event(CaseStatus(as_of=T0, child_in_need=True), subject=eli, at=T0),
        event(CaseStatus(as_of=T0, child_in_need=True), subject=eli, at=T0),
        # The Paris id filled in, then an alert that only the Paris id links.
        event(CaseStatus(as_of=T0, child_protection_plan=True), subject=eli_filled, at=T0),
        event(
            CaseStatus(as_of=T0, child_protection_plan=True),
            subject=child(given=None, family=None, born=None, nhs=None, paris="P-2002"),
            at=T0,
        ),
    ]
    for n in range(3):  # three episodes within the window: a repeat-missing pattern
        start = T0 + timedelta(days=7 * n)
        events.append(
            _reported(f"EP-A{n}", start, ava, RiskGrade.HIGH if n == 2 else RiskGrade.LOW)
        )
        if n == 2:
            # The third episode raised the repeat-missing clock; alerts that fold no
            # episode (so nothing is flushed between) must find it, not make it twice.
            at = start + timedelta(hours=1)
            events.append(event(CaseStatus(as_of=at, child_in_need=True), subject=ava, at=at))
            events.append(
                event(CaseStatus(as_of=at, child_protection_plan=True), subject=ava, at=at)
            )
        events.append(
            event(
                MissingUpdated(episode_id=f"EP-A{n}", risk_grade=RiskGrade.MEDIUM),
                subject=ava,
                at=start + timedelta(hours=2),
                correlation_id=f"EP-A{n}",
            )
        )
        events.append(_found(f"EP-A{n}", start + timedelta(hours=9), ava))
    events.append(
        event(
            ReturnHomeInterview(
                episode_id="EP-A0",
                offered_at=T0 + timedelta(days=1),
                completed_at=T0 + timedelta(days=2),
            ),
            subject=ava,
            at=T0 + timedelta(days=2),
            correlation_id="EP-A0",
        )
    )
    tracker = CseTrackerEntry(level=CseLevel.LEVEL_2, identified_on=date(2026, 9, 3))
    at = T0 + timedelta(days=3)
    events.append(event(CaseStatus(as_of=at, cse_tracker=tracker), subject=ava, at=at))
    raised = CseTrackerEntry(level=CseLevel.LEVEL_3, identified_on=date(2026, 9, 3))
    at = T0 + timedelta(days=10)
    events.append(event(CaseStatus(as_of=at, cse_tracker=raised), subject=ava, at=at))
    # Missing again once on the tracker: her score counts the level the batch recorded.
    events.append(_reported("EP-A3", T0 + timedelta(days=11), ava, RiskGrade.LOW))
    events.append(_reported("EP-O1", T0 + timedelta(days=4), other, RiskGrade.MEDIUM))
    events.append(_found("EP-O1", T0 + timedelta(days=5), other))
    events.append(_reported("EP-B1", T0 + timedelta(days=1), ben_paris, RiskGrade.MEDIUM))
    events.append(_found("EP-B1", T0 + timedelta(days=2), ben))
    events.append(_reported("EP-B2", T0 + timedelta(days=6), ben, RiskGrade.HIGH))
    events.append(cara_reported)
    # Slough's looked-after child placed here: a notification owed to Slough.
    dara = child(
        given="Dara",
        family="Quennell",
        born=date(2013, 4, 5),
        nhs=45,
        home=SLOUGH,
        looked_after=LookedAfter(responsible_authority=SLOUGH, placed_in=WAM),
    )
    events.append(_reported("EP-D1", T0 + timedelta(hours=5), dara, RiskGrade.MEDIUM))
    events.append(_found("EP-C1", T0 + timedelta(hours=30), cara))
    return events


def _state(service: Service) -> dict[str, Any]:
    """What triage stored, with the random child keys replaced by the first event filed
    under each child, so two databases can be compared."""
    with session_scope(service.sessions) as session:
        return _read(session)


def _when(at: datetime | None) -> datetime | str | None:
    """A time, or ``"received"`` for one set from the clock when the alert arrived."""
    if at is not None and at > datetime.now(UTC) - timedelta(hours=1):
        return "received"
    return at


def _read(session: Session) -> dict[str, Any]:
    alerts = {a.id: str(a.event_id) for a in session.execute(select(MashAlert)).scalars()}
    rows = sorted(session.execute(select(IntakeAlert)).scalars(), key=lambda r: r.alert_id)
    names: dict[str | None, str | None] = {None: None}
    for row in rows:
        names.setdefault(row.child_key, alerts[row.alert_id])
    children = list(session.execute(select(IntakeChild)).scalars())
    for c in children:
        names.setdefault(c.child_key, f"unfiled-{c.nhs_number}")

    def key(value: str | None) -> str | None:
        return names[value]

    return {
        "alerts": sorted(
            (
                alerts[r.alert_id],
                key(r.child_key),
                r.episode_id,
                r.band,
                r.score,
                tuple(r.reasons),
                r.link,
                r.linked_by,
            )
            for r in rows
        ),
        "children": sorted(
            (key(c.child_key), c.nhs_number, c.paris_id, key(c.merged_into)) for c in children
        ),
        "episodes": sorted(
            (
                e.episode_id,
                key(e.child_key),
                e.reported_at,
                e.risk_grade,
                e.found_at,
                e.rhi_completed_at,
            )
            for e in session.execute(select(IntakeEpisode)).scalars()
        ),
        "clocks": sorted(
            (
                c.kind,
                c.subject if c.subject not in names else key(c.subject),
                key(c.child_key),
                c.episode_id,
                c.started_at,
                c.due_at,
                _when(c.met_at),
            )
            for c in session.execute(select(IntakeClock)).scalars()
            if c.kind != "mash_decision"  # its subject is the alert id, which differs
        ),
        "trackers": sorted(
            (key(t.child_key), t.identified_on, t.level, tuple(map(tuple, t.history)))
            for t in session.execute(select(IntakeTracker)).scalars()
        ),
        "reviews": sorted(
            (alerts[r.alert_id], key(r.child_key), r.kind, tuple(key(c) for c in r.candidates))
            for r in session.execute(select(LinkReview)).scalars()
        ),
        "notifications": sorted(
            (n.episode_id, n.authority)
            for n in session.execute(select(IntakeNotification)).scalars()
        ),
    }


def _no_fallback(*_args: object) -> None:
    raise AssertionError("the batch's triage failed and fell back to one alert at a time")


@pytest.mark.parametrize("first_batch", [0, 3, 6], ids=["one-batch", "after-3", "after-6"])
def test_a_batch_is_triaged_as_its_alerts_one_by_one(
    db_backend: str, tmp_path: Path, intake_keys: Path, first_batch: int
) -> None:
    """With ``first_batch``, the alerts come in two batches: the second must find what the
    first stored (children to link, episodes to fold, their alerts' facts) as stored rows,
    not as rows of its own batch."""
    events = _scenario()
    states = []
    for batched in (False, True):
        with fresh_database(db_backend, tmp_path) as url:
            service = Service.load(intake_settings(url, intake_keys))
            try:
                consumer = IntakeConsumer(service)
                tokens = [(seal_for_mash(service, e), None) for e in events]
                if batched:
                    with pytest.MonkeyPatch.context() as patch:
                        # The batch must succeed as a batch, not by falling back to
                        # triaging its alerts one by one.
                        patch.setattr(consumer, "_triage", _no_fallback)
                        outcomes: list[object] = []
                        for chunk in (tokens[:first_batch], tokens[first_batch:]):
                            if chunk:
                                outcomes.extend(consumer.store_many(chunk))
                else:
                    outcomes = [consumer.store(token, None) for token, _ in tokens]
                assert outcomes == [StoreOutcome.STORED] * len(events)
                states.append(_state(service))
            finally:
                service.engine.dispose()
    one_by_one, batch = states
    # The scenario exercises what it is meant to.
    assert {kind for kind, *_ in one_by_one["clocks"]} >= {
        "return_interview",
        "repeat_missing",
        "notify_placing_authority",
        "notify_this_borough",
    }
    assert one_by_one["reviews"]
    assert one_by_one["trackers"]
    assert one_by_one["notifications"]
    assert any(link == "linked" for *_, link, _by in one_by_one["alerts"])
    eli = [
        a for a in one_by_one["alerts"] if a[0] in {str(e.metadata.event_id) for e in events[:4]}
    ]
    assert len({child_key for _, child_key, *_ in eli}) == 1  # one child, linked each time
    for part in one_by_one:
        assert batch[part] == one_by_one[part], part
