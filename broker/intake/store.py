"""What storing an alert sets off, inside the consumer's transaction: link, fold, clock, score.

``IntakeStore.on_alert`` runs after the consumer has added the ``mash_alert`` row and
before it commits, so the alert, its child link, the episode and tracker state, the
clocks and the priority all commit (or roll back) together with the acknowledgement's
inbox entry. The pure rules live in the sibling modules; this module maps rows to their
records and back.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import Select, and_, bindparam, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, SQLModel, col

from broker.intake._time import london_date
from broker.intake.clocks import (
    Clock,
    episode_clocks,
    episodes_in_window,
    mash_decision_clock,
    repeat_missing_clock,
    repeat_missing_patterns,
)
from broker.intake.context import IntakeContext, parse_event
from broker.intake.linking import (
    STRONG_IDS,
    WEAK_FIELDS,
    ChildIdentity,
    Conflict,
    Linked,
    LinkResult,
    PossibleMatch,
    blind_identity,
    compare,
    episode_key,
    identity_of,
    link_child,
)
from broker.intake.priority import Band, Priority, factors_from_event, prioritise
from broker.intake.records import (
    EpisodeFact,
    EpisodeRecord,
    LevelChange,
    NotificationRecord,
    TrackerRecord,
    episode_record_from_facts,
)
from broker.intake.tables import (
    IntakeAlert,
    IntakeChild,
    IntakeClock,
    IntakeEpisode,
    IntakeNotification,
    IntakeTracker,
    LinkKind,
    LinkReview,
    ReviewStatus,
)
from broker.logging import get_logger
from broker.models import MashAlert, new_row, utc_now
from broker.rowinsert import RowInsert
from schemas import DisclosureClaims
from schemas.events import (
    CaseStatus,
    CseLevel,
    Event,
    MissingFound,
    MissingReported,
    MissingUpdated,
    RemovalReason,
    ReturnHomeInterview,
    RiskGrade,
)

__all__ = [
    "BROKER_ACTOR",
    "ChildLink",
    "IntakeStore",
    "ParsedBatch",
    "episode_record",
    "log_triaged",
    "new_child_key",
    "put_clock",
    "resolve_child",
    "tracker_record",
    "triage_batch",
]

_log = get_logger("intake.store")

#: ``recorded_by`` of records this broker makes itself (its own receipt of an alert).
BROKER_ACTOR = "broker"

_EPISODIC = (MissingReported, MissingUpdated, MissingFound, ReturnHomeInterview)
_IDENTITY_FIELDS = (*STRONG_IDS, *WEAK_FIELDS)


def new_child_key() -> str:
    """A random, meaningless key for a newly known child."""
    return f"ch-{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class ChildLink:
    """Where an alert's child was filed and how it was found.

    Attributes:
        child_key: the child the alert is filed under (``None`` without a subject).
        kind: linked, new, possible, conflict or none.
        by: the strong identifier that linked it, for ``linked``.
    """

    child_key: str | None
    kind: LinkKind
    by: str | None = None


def resolve_child(session: Session, child_key: str) -> str:
    """The key a child is kept under now, following confirmed merges."""
    seen = {child_key}
    current = child_key
    while True:
        row = _find(session, IntakeChild, current)
        if row is None or row.merged_into is None or row.merged_into in seen:
            return current
        current = row.merged_into
        seen.add(current)


def episode_record(row: IntakeEpisode) -> EpisodeRecord:
    """The pure record of a stored episode."""
    return EpisodeRecord(
        episode_id=row.episode_id,
        child_key=row.child_key,
        reported_at=row.reported_at,
        risk_grade=RiskGrade(row.risk_grade) if row.risk_grade else None,
        found_at=row.found_at,
        returned_at=row.returned_at,
        missing_from=row.missing_from,
        home_authority=row.home_authority,
        looked_after=row.looked_after,
        placed_in=row.placed_in,
        rhi_offered_at=row.rhi_offered_at,
        rhi_completed_at=row.rhi_completed_at,
        rhi_declined_at=row.rhi_declined_at,
    )


def tracker_record(row: IntakeTracker) -> TrackerRecord:
    """The pure record of a stored tracker spell."""
    history = tuple(
        LevelChange(on=date.fromisoformat(str(on)), level=CseLevel(int(str(level))))
        for on, level in row.history
    )
    return TrackerRecord(
        child_key=row.child_key,
        identified_on=row.identified_on,
        level=CseLevel(row.level),
        removed_on=row.removed_on,
        removal_reason=RemovalReason(row.removal_reason) if row.removal_reason else None,
        history=history,
    )


def put_clock(
    session: Session,
    clock: Clock,
    *,
    child_key: str | None,
    alert_id: int | None = None,
    episode_id: str | None = None,
    keep_met: bool = False,
    new: bool = False,
) -> IntakeClock:
    """Insert or refresh a stored clock; ``keep_met`` keeps a met time a person recorded.

    ``new`` says the clock cannot be stored yet (its subject is new), so it is not looked up.
    """
    row = None if new else _find(session, IntakeClock, clock.clock_id)
    values: dict[str, object] = {
        "child_key": child_key,
        "started_at": clock.started_at,
        "due_at": clock.due_at,
        "authority": clock.authority,
        "instance": clock.instance,
    }
    if alert_id is not None:
        values["alert_id"] = alert_id
    if episode_id is not None:
        values["episode_id"] = episode_id
    if row is None:
        row = new_row(
            IntakeClock,
            clock_id=clock.clock_id,
            kind=clock.kind.value,
            subject=clock.subject,
            met_at=clock.met_at,
            **values,
        )
        _remember(session, row, clock.clock_id)
        session.add(row)
        return row
    if not (keep_met and row.met_at is not None):
        values["met_at"] = clock.met_at
    if _assign_changed(row, values):
        row.updated_at = utc_now()
    return row


def _assign_changed(row: SQLModel, values: Mapping[str, object]) -> bool:
    """Set the fields of ``row`` whose value differs from ``values``; whether any did.

    A row refreshed with what it already holds stays clean: no UPDATE, and its
    ``updated_at`` says when it last changed, not when it was last looked at.
    """
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


# The triage's queries, built once: building a statement costs more than running it.
_EPISODE_FACTS = select(col(IntakeAlert.alert_id), col(IntakeAlert.episode_fact)).where(
    col(IntakeAlert.episode_id) == bindparam("episode_id")
)
_NOTIFICATIONS = select(IntakeNotification).where(
    col(IntakeNotification.episode_id) == bindparam("episode_id")
)
_CHILD_EPISODES = select(IntakeEpisode).where(
    col(IntakeEpisode.child_key) == bindparam("child_key")
)
_CHILD_TRACKERS = select(IntakeTracker).where(
    col(IntakeTracker.child_key) == bindparam("child_key")
)


@functools.cache
def _candidate_query(strong: tuple[str, ...], weak: bool) -> Select[IntakeChild]:
    """Children not merged away that share one of the ``strong`` identifiers, or (with
    ``weak``) the name and date of birth; the values are bound by field name."""
    conditions: list[ColumnElement[bool]] = [
        col(getattr(IntakeChild, name)) == bindparam(name) for name in strong
    ]
    if weak:
        conditions.append(
            and_(*(col(getattr(IntakeChild, name)) == bindparam(name) for name in WEAK_FIELDS))
        )
    return select(IntakeChild).where(col(IntakeChild.merged_into).is_(None), or_(*conditions))


#: ``session.info`` key: the children, episodes and clocks a triage batch made, by type
#: and key, found there before they are flushed (neither a look-up by primary key nor a
#: query sees a pending row).
_MADE = "intake.made"

_Made = dict[type[SQLModel], dict[str, SQLModel]]
_Row = TypeVar("_Row", bound=SQLModel)


#: ``session.info`` key: the triage rows of a batch, written together at its end.
_TRIAGED = "intake.triaged"
_TRIAGE_ROWS = SQLModel.metadata.tables[IntakeAlert.__tablename__]
_INSERT_TRIAGE = RowInsert(_TRIAGE_ROWS)

#: The rows a triage batch makes that are keyed by what they are (no id to read back):
#: those still pending at its end are written by one INSERT a table, in this order,
#: instead of the ORM's flush, which costs several times the statement.
_NEW_BY_INSERT: tuple[type[SQLModel], ...] = (IntakeChild, IntakeEpisode, IntakeClock)
_INSERT_NEW = {
    model: RowInsert(SQLModel.metadata.tables[str(model.__tablename__)]) for model in _NEW_BY_INSERT
}

#: ``session.info`` key: what ``IntakeStore.preload`` read for a triage batch.
_PRELOADED = "intake.preloaded"
#: ``session.info`` key: the batch's claims as parsed before the write lock.
_PARSED = "intake.parsed"

#: The stored episodes of a batch's alerts, in one query.
_BATCH_EPISODES = select(IntakeEpisode).where(
    col(IntakeEpisode.episode_id).in_(bindparam("ids", expanding=True))
)
#: What the stored alerts of a batch's episodes state about them, in one query.
_BATCH_FACTS = select(
    _TRIAGE_ROWS.c.episode_id, _TRIAGE_ROWS.c.alert_id, _TRIAGE_ROWS.c.episode_fact
).where(_TRIAGE_ROWS.c.episode_id.in_(bindparam("ids", expanding=True)))
#: Every stored child that could be a candidate of one of a batch's alerts: each strong
#: identifier among the batch's, or name and date of birth each among the batch's (a
#: superset, narrowed in memory by ``_matches``, as the per-alert query would).
_BATCH_CANDIDATES = select(IntakeChild).where(
    col(IntakeChild.merged_into).is_(None),
    or_(
        *(
            col(getattr(IntakeChild, name)).in_(bindparam(name, expanding=True))
            for name in STRONG_IDS
        ),
        and_(
            *(
                col(getattr(IntakeChild, name)).in_(bindparam(name, expanding=True))
                for name in WEAK_FIELDS
            )
        ),
    ),
)


@dataclass(eq=False)
class ParsedBatch:
    """A triage batch's events and their children's blinded identities, by ``id`` of the
    claims they came from: pure work, done before the batch takes the database."""

    events: dict[int, Event | None]
    identities: dict[int, ChildIdentity]


@dataclass(eq=False)
class _Preloaded:
    """What a triage batch's alerts will look up, read once for the whole batch."""

    #: The batch's events and their children's blinded identities.
    parsed: ParsedBatch
    #: The batch's episodes that were stored when it began (held: the session's identity
    #: map keeps rows only while something refers to them).
    episodes: dict[str, IntakeEpisode]
    #: The batch's episode ids that were not stored when it began.
    absent: set[str]
    #: Per episode of the batch: (alert id, stored fact) of its alerts, this batch's too.
    facts: dict[str, list[tuple[int, dict[str, Any] | None]]]
    #: Stored children that may be candidates of the batch's alerts.
    children: list[IntakeChild]


def _preloaded(session: Session) -> _Preloaded | None:
    loaded: _Preloaded | None = session.info.get(_PRELOADED)
    return loaded


@contextmanager
def triage_batch(
    session: Session, parsed: ParsedBatch | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Triage alerts in ``session`` with few flushes: within it, the rows ``on_alert``
    makes are kept pending and found in memory by later alerts of the batch, and written
    together (one INSERT per table) when the savepoint or transaction ends. It flushes
    only before a query that must see a changed stored row (identifiers filled in, a
    tracker spell, a review, a notification). Use one per attempt at a batch.

    ``parsed`` is what ``parse_batch`` gave for the batch's claims, if the caller has it
    (parsed before the write lock, it is not parsed again under it).

    Yields the batch's triage rows (``IntakeAlert`` values), written when it ends: pass
    them to ``log_triaged`` once the transaction has committed."""
    session.info[_MADE] = {}
    if parsed is not None:
        session.info[_PARSED] = parsed
    triaged: list[dict[str, Any]] = []
    session.info[_TRIAGED] = triaged
    try:
        with session.no_autoflush:
            yield triaged
            _insert_new_rows(session)
            if triaged:
                # The batch's triage rows, in one statement; nothing in the triage reads
                # them back (a batch's episodes know their alerts' facts from ``preload``).
                _INSERT_TRIAGE(session.connection(), triaged)
    finally:
        session.info.pop(_MADE, None)
        session.info.pop(_PARSED, None)
        session.info.pop(_PRELOADED, None)
        session.info.pop(_TRIAGED, None)


def _insert_new_rows(session: Session) -> None:
    """Write the batch's pending children, episodes and clocks by one INSERT a table,
    then let the session forget them (nothing of the batch reads them after; a later
    transaction's query loads them as any stored row). Rows a flush in the batch wrote
    already are stored, not pending, and left to the session as its other changes are."""
    pending: dict[type[SQLModel], list[SQLModel]] = {}
    for row in session.new:
        if type(row) in _INSERT_NEW:
            pending.setdefault(type(row), []).append(row)
    if not pending:
        return
    connection = session.connection()
    for model in _NEW_BY_INSERT:
        rows = pending.get(model)
        if rows:
            into = _INSERT_NEW[model]
            into(connection, [{name: getattr(row, name) for name in into.columns} for row in rows])
            for row in rows:
                session.expunge(row)


def log_triaged(rows: Sequence[dict[str, Any]]) -> None:
    """Log ``alert_triaged`` (ids, band and link only) for triage rows ``triage_batch``
    wrote: called once they are committed, so the write lock is not held for the log."""
    for row in rows:
        _log.info(
            "alert_triaged",
            alert_id=row["alert_id"],
            band=row["band"],
            link=row["link"],
            episode=row["episode_id"],
        )


def _made(session: Session) -> _Made | None:
    made: _Made | None = session.info.get(_MADE)
    return made


def _remember(session: Session, row: SQLModel, key: str) -> None:
    made = _made(session)
    if made is not None:
        made.setdefault(type(row), {})[key] = row


def _find(session: Session, model: type[_Row], key: str) -> _Row | None:
    """The row of ``model`` with primary key ``key``: made in this batch, or stored."""
    made = _made(session)
    if made is not None:
        row = made.get(model, {}).get(key)
        if row is not None:
            return row  # type: ignore[return-value]
    loaded = _preloaded(session)
    if loaded is not None and model is IntakeEpisode:
        if key in loaded.episodes:
            return loaded.episodes[key]  # type: ignore[return-value]
        if key in loaded.absent:
            return None
    return session.get(model, key)


def _made_of(session: Session, model: type[_Row]) -> list[_Row]:
    """The rows of ``model`` made in this batch (flushed since or not)."""
    made = _made(session)
    if made is None:
        return []
    return list(made.get(model, {}).values())  # type: ignore[arg-type]


def _new_in_batch(session: Session, child_key: str) -> bool:
    """Whether this triage batch made the child (so only the batch's rows refer to it)."""
    made = _made(session)
    return made is not None and child_key in made.get(IntakeChild, {})


def _matches(row: IntakeChild, me: ChildIdentity, strong: tuple[str, ...]) -> bool:
    """What ``_candidate_query`` selects, for a row held in memory."""
    if row.merged_into is not None:
        return False
    if any(getattr(row, name) == getattr(me, name) for name in strong):
        return True
    return me.has_weak_fields and all(getattr(row, n) == getattr(me, n) for n in WEAK_FIELDS)


def _identity_of_row(row: IntakeChild) -> ChildIdentity:
    return ChildIdentity(
        child_key=row.child_key, **{name: getattr(row, name) for name in _IDENTITY_FIELDS}
    )


class IntakeStore:
    """Applies one stored alert to the intake state (links, episodes, tracker, clocks)."""

    def __init__(self, context: IntakeContext) -> None:
        self.context = context

    # ------------------------------------------------------------------ the entry point

    def parse_batch(self, batch: Sequence[DisclosureClaims]) -> ParsedBatch:
        """Parse a batch's events and blind their children's identifiers: no database, so
        the consumer does it before it takes SQLite's write lock (``preload`` takes it)."""
        events: dict[int, Event | None] = {}
        identities: dict[int, ChildIdentity] = {}
        for claims in batch:
            event = events[id(claims)] = parse_event(claims.event)
            if event is not None and event.subject is not None:
                identities[id(claims)] = blind_identity(
                    identity_of(event.subject), self.context.link_key
                )
        return ParsedBatch(events, identities)

    def preload(
        self,
        session: Session,
        batch: Sequence[DisclosureClaims],
        parsed: ParsedBatch | None = None,
    ) -> None:
        """Read what a triage batch's alerts will look up, in three queries for the batch:
        their episodes, what the episodes' stored alerts state, and the stored children
        that may be their candidates; ``on_alert`` then finds them in memory instead of
        querying once per alert. Call it inside ``triage_batch``, before the first
        ``on_alert`` of the batch.

        What the batch itself writes meanwhile is known the same way: the rows it makes
        (``triage_batch``), the facts its alerts state (added as each is triaged), and the
        identifiers it fills in (on the same row objects).

        ``parsed`` is what ``parse_batch`` gave for these claims, if the caller has it.
        """
        known = parsed if parsed is not None else ParsedBatch({}, {})
        missing = [claims for claims in batch if id(claims) not in known.events]
        if missing:
            more = self.parse_batch(missing)
            known = ParsedBatch(known.events | more.events, known.identities | more.identities)
        episode_ids: set[str] = set()
        values: dict[str, set[object]] = {name: set() for name in _IDENTITY_FIELDS}
        for claims in batch:
            event = known.events[id(claims)]
            if event is None:
                continue
            key = episode_key(event) if isinstance(event.body, _EPISODIC) else None
            if key is not None:
                episode_ids.add(key)
            me = known.identities.get(id(claims))
            if me is not None:
                for strong in STRONG_IDS:
                    if getattr(me, strong) is not None:
                        values[strong].add(getattr(me, strong))
                if me.has_weak_fields:
                    for weak in WEAK_FIELDS:
                        values[weak].add(getattr(me, weak))
        episodes: dict[str, IntakeEpisode] = {}
        facts: dict[str, list[tuple[int, dict[str, Any] | None]]] = {}
        if episode_ids:
            ids = sorted(episode_ids)
            episodes = {
                row.episode_id: row
                for row in session.execute(_BATCH_EPISODES, {"ids": ids}).scalars()
            }
            facts = {episode_id: [] for episode_id in ids}
            batch_facts = session.connection().execute(_BATCH_FACTS, {"ids": ids})
            for episode_id, alert_id, stored in batch_facts:
                facts[episode_id].append((alert_id, stored))
        children: list[IntakeChild] = []
        if any(values.values()):
            children = list(
                session.execute(
                    _BATCH_CANDIDATES, {name: sorted(v, key=str) for name, v in values.items()}
                ).scalars()
            )
        session.info[_PRELOADED] = _Preloaded(
            parsed=known,
            episodes=episodes,
            absent=episode_ids - episodes.keys(),
            facts=facts,
            children=children,
        )

    def on_alert(self, session: Session, alert: MashAlert, claims: DisclosureClaims) -> None:
        """Link, fold, clock and score a newly stored alert, in the caller's transaction,
        within a ``triage_batch``.

        Makes the alert's triage row (``IntakeAlert``), its child, episode, tracker and
        clock rows; the batch writes them when it ends.

        Args:
            session: the consumer's session; ``alert`` is flushed (has an id).
            alert: the stored alert.
            claims: its opened claims.
        """
        assert alert.id is not None  # noqa: S101 - the consumer flushes before calling
        loaded = _preloaded(session)
        parsed: ParsedBatch = (
            loaded.parsed
            if loaded is not None
            else session.info.get(_PARSED) or ParsedBatch({}, {})
        )
        if id(claims) in parsed.events:
            event = parsed.events[id(claims)]
        else:
            event = parse_event(claims.event)
        me = parsed.identities.get(id(claims))
        link = self.link(session, alert.id, event, me)
        episode_id = episode_key(event) if event and isinstance(event.body, _EPISODIC) else None
        child_key = link.child_key
        if episode_id is not None and child_key is None:
            known = _find(session, IntakeEpisode, episode_id)
            child_key = known.child_key if known is not None else None
        fact = EpisodeFact.of(event) if event is not None and episode_id is not None else None
        episodes: list[EpisodeRecord] | None = None
        if event is not None and episode_id is not None and child_key is not None:
            self.refresh_episode(session, episode_id, child_key, alert, new_fact=fact)
        if event is not None and child_key is not None:
            self._apply_tracker(session, child_key, event)
            episodes = self.child_episodes(session, child_key)
            self.refresh_repeat_clocks(session, child_key, episodes=episodes)
        decision = mash_decision_clock(
            str(alert.id), alert.received_at, None, self.context.calendar
        )
        # The alert is new, so is its decision clock: nothing stored to look up.
        put_clock(session, decision, child_key=child_key, alert_id=alert.id, new=True)
        # The triage row is written last, once, with its score (the episode's facts are
        # read above without it; this alert's own fact is passed in), by one INSERT for
        # the whole batch at the end of ``triage_batch``: an ORM object would cost more to
        # construct than the statement does to run.
        row: dict[str, Any] = {
            "alert_id": alert.id,
            "child_key": child_key,
            "episode_id": episode_id,
            "occurred_at": event.metadata.occurred_at if event else None,
            "link": link.kind.value,
            "linked_by": link.by,
            "episode_fact": fact.to_json() if fact is not None else None,
            **self._score(session, event, child_key, episodes=episodes),
        }
        # Written with the batch's, and logged by the caller, once committed.
        session.info[_TRIAGED].append(row)
        if loaded is not None and episode_id is not None and episode_id in loaded.facts:
            # Later alerts of the batch fold this one's fact, as a query would find it.
            loaded.facts[episode_id].append((alert.id, row["episode_fact"]))

    # ------------------------------------------------------------------ linking

    def link(
        self,
        session: Session,
        alert_id: int,
        event: Event | None,
        me: ChildIdentity | None = None,
    ) -> ChildLink:
        """File the event's child under a known child, or a new one; flag doubtful matches.

        A strong identifier links (and fills in identifiers the child lacked). A name and
        date-of-birth match, or strong evidence both for and against, files the alert under
        a separate child and opens a review for a person: never a silent merge.

        ``me`` is the event's child's blinded identity, if the caller has it already.
        """
        if event is None or event.subject is None:
            return ChildLink(None, LinkKind.NONE)
        if me is None:
            me = blind_identity(identity_of(event.subject), self.context.link_key)
        rows = self._candidates(session, me)
        result = link_child(me, [_identity_of_row(r) for r in rows])
        if isinstance(result, Linked):
            key = resolve_child(session, result.child_key)
            self._fill_identifiers(session, key, me)
            return ChildLink(key, LinkKind.LINKED, result.by)
        if isinstance(result, Conflict):
            held = self._provisional_for(session, me, rows)
            if held is not None:
                return ChildLink(held, LinkKind.CONFLICT)
        key = self._new_child(session, me)
        if isinstance(result, PossibleMatch | Conflict):
            self._open_review(session, alert_id, key, result)
            kind = LinkKind.POSSIBLE if isinstance(result, PossibleMatch) else LinkKind.CONFLICT
            return ChildLink(key, kind)
        return ChildLink(key, LinkKind.NEW)

    def _candidates(self, session: Session, me: ChildIdentity) -> Sequence[IntakeChild]:
        strong = tuple(name for name in STRONG_IDS if getattr(me, name) is not None)
        if not strong and not me.has_weak_fields:
            return []
        loaded = _preloaded(session)
        if loaded is not None:
            # Read for the whole batch; the rows are the session's own, so identifiers an
            # earlier alert of the batch filled in are seen here.
            found = {row.child_key: row for row in loaded.children if _matches(row, me, strong)}
        else:
            names = strong + (WEAK_FIELDS if me.has_weak_fields else ())
            statement = _candidate_query(strong, me.has_weak_fields)
            found = {
                row.child_key: row
                for row in session.execute(statement, {n: getattr(me, n) for n in names}).scalars()
            }
        # Children made earlier in this batch are not flushed yet: matched here as the
        # query would match them.
        for row in _made_of(session, IntakeChild):
            if row.child_key not in found and _matches(row, me, strong):
                found[row.child_key] = row
        return list(found.values())

    def _new_child(self, session: Session, me: ChildIdentity) -> str:
        key = new_child_key()
        identity = {name: getattr(me, name) for name in _IDENTITY_FIELDS}
        row = new_row(IntakeChild, child_key=key, **identity)
        session.add(row)
        _remember(session, row, key)
        return key

    def _fill_identifiers(self, session: Session, key: str, me: ChildIdentity) -> None:
        row = _find(session, IntakeChild, key)
        if row is None:
            return
        filled = False
        for name in _IDENTITY_FIELDS:
            # Only gaps are filled: a differing value would have been a conflict.
            if getattr(row, name) is None and getattr(me, name) is not None:
                setattr(row, name, getattr(me, name))
                filled = True
        if filled and row not in session.new:
            # A stored child: the next alert's candidate query must match on them.
            session.flush()

    def _provisional_for(
        self, session: Session, me: ChildIdentity, rows: Sequence[IntakeChild]
    ) -> str | None:
        """A child filed apart under an open review that this event matches exactly.

        Without this, every later event about a conflicting child would open yet another
        provisional child and review; with it they gather under the first one.
        """
        # Only the candidates' own reviews: all open reviews would grow with every
        # doubtful match the intake ever filed, and be read for each new one. A review an
        # earlier alert of the batch opened must be found too.
        session.flush()
        open_keys = set(
            session.execute(
                select(col(LinkReview.child_key)).where(
                    col(LinkReview.status) == ReviewStatus.OPEN.value,
                    col(LinkReview.child_key).in_({r.child_key for r in rows}),
                )
            ).scalars()
        )
        matches = [
            r.child_key
            for r in rows
            if r.child_key in open_keys and isinstance(compare(me, _identity_of_row(r)), Linked)
        ]
        return matches[0] if len(matches) == 1 else None

    def _open_review(
        self, session: Session, alert_id: int, child_key: str, result: LinkResult
    ) -> None:
        candidates: tuple[str, ...]
        agreeing: tuple[str, ...]
        conflicting: tuple[str, ...]
        if isinstance(result, PossibleMatch):
            candidates, agreeing, conflicting = result.child_keys, result.on, ()
            kind = LinkKind.POSSIBLE
        elif isinstance(result, Conflict):
            candidates, agreeing, conflicting = (
                result.child_keys,
                result.agreeing,
                result.conflicting,
            )
            kind = LinkKind.CONFLICT
        else:
            return
        session.add(
            LinkReview(
                alert_id=alert_id,
                child_key=child_key,
                candidates=list(candidates),
                kind=kind.value,
                agreeing=list(agreeing),
                conflicting=list(conflicting),
            )
        )

    # ------------------------------------------------------------------ episodes

    def episode_facts(self, session: Session, episode_id: str) -> list[EpisodeFact]:
        """What each stored alert of an episode states about it.

        Kept beside each alert when it is stored; an alert stored before that was kept is
        opened again (decrypted and verified) to read it.
        """
        loaded = _preloaded(session)
        rows: Sequence[tuple[int, dict[str, Any] | None]]
        if loaded is not None and episode_id in loaded.facts:
            rows = loaded.facts[episode_id]
        else:
            rows = [
                (alert_id, stored)
                for alert_id, stored in session.execute(_EPISODE_FACTS, {"episode_id": episode_id})
            ]
        facts = [EpisodeFact.from_json(stored) for _, stored in rows if stored is not None]
        unkept = [alert_id for alert_id, stored in rows if stored is None]
        if unkept:
            alerts = session.execute(select(MashAlert).where(col(MashAlert.id).in_(unkept)))
            for alert in alerts.scalars():
                event = parse_event(self.context.open_alert(alert).event)
                fact = EpisodeFact.of(event) if event is not None else None
                if fact is not None:
                    facts.append(fact)
        return facts

    def refresh_episode(
        self,
        session: Session,
        episode_id: str,
        child_key: str,
        alert: MashAlert,
        *,
        new_fact: EpisodeFact | None = None,
    ) -> IntakeEpisode:
        """Fold the episode's events into its row and refresh its clocks.

        Args:
            session: the consumer's session.
            episode_id: the episode.
            child_key: the (resolved) child the alert was filed under.
            alert: the alert that set this off.
            new_fact: the fact of an alert whose triage row is not written yet.
        """
        row = _find(session, IntakeEpisode, episode_id)
        # A stored episode's child may have been merged since; a new one's is current.
        owner = resolve_child(session, row.child_key) if row is not None else child_key
        facts = self.episode_facts(session, episode_id)
        if new_fact is not None:
            facts.append(new_fact)
        record = episode_record_from_facts(owner, facts)
        values: dict[str, object] = {
            "child_key": owner,
            "reported_at": record.reported_at,
            "risk_grade": record.risk_grade.value if record.risk_grade else None,
            "found_at": record.found_at,
            "returned_at": record.returned_at,
            "missing_from": record.missing_from,
            "home_authority": record.home_authority,
            "looked_after": record.looked_after,
            "placed_in": record.placed_in,
            "rhi_offered_at": record.rhi_offered_at,
            "rhi_completed_at": record.rhi_completed_at,
            "rhi_declined_at": record.rhi_declined_at,
        }
        moved = False
        if row is None:
            row = new_row(IntakeEpisode, episode_id=episode_id, **values)
            session.add(row)
            _remember(session, row, episode_id)
        else:
            moved = row.child_key != owner
            if _assign_changed(row, values):
                row.updated_at = utc_now()
        noted = self._note_own_receipt(session, record, alert)
        if moved or noted:
            # Read back by a query (the child's episodes, the episode's notifications).
            session.flush()
        self.refresh_episode_clocks(session, row)
        return row

    def _note_own_receipt(self, session: Session, record: EpisodeRecord, alert: MashAlert) -> bool:
        """Record this borough's own receipt as its notification, if owed; whether it did."""
        # This borough's own looked-after child placed elsewhere: the alert reaching its
        # MASH is the notification this borough is owed.
        borough = self.context.borough
        host = record.host_authority
        if not (record.looked_after and record.home_authority == borough and host != borough):
            return False
        existing = session.execute(
            select(col(IntakeNotification.id)).where(
                col(IntakeNotification.episode_id) == record.episode_id,
                col(IntakeNotification.authority) == borough,
            )
        ).first()
        if existing is None:
            session.add(
                IntakeNotification(
                    episode_id=record.episode_id,
                    authority=borough,
                    notified_at=alert.received_at,
                    recorded_by=BROKER_ACTOR,
                )
            )
            return True
        return False

    def notifications(self, session: Session, episode_id: str) -> list[NotificationRecord]:
        """The notification records of an episode."""
        rows = session.execute(_NOTIFICATIONS, {"episode_id": episode_id}).scalars()
        return [NotificationRecord(r.episode_id, r.authority, r.notified_at) for r in rows]

    def refresh_episode_clocks(self, session: Session, row: IntakeEpisode) -> None:
        """Recompute the notification and return-interview clocks of a stored episode."""
        record = episode_record(row)
        # Only a looked-after child's episode has a notification clock to meet.
        told = self.notifications(session, row.episode_id) if record.looked_after else []
        clocks = episode_clocks(
            record, borough=self.context.borough, notifications=told, config=self.context.clocks
        )
        for clock in clocks:
            put_clock(session, clock, child_key=row.child_key, episode_id=row.episode_id)

    def child_episodes(self, session: Session, child_key: str) -> list[EpisodeRecord]:
        """The child's stored episodes as records (with those this batch made)."""
        rows: dict[str, IntakeEpisode] = {}
        if not _new_in_batch(session, child_key):
            # A child this batch made has no episode but those the batch made (below).
            rows = {
                row.episode_id: row
                for row in session.execute(_CHILD_EPISODES, {"child_key": child_key}).scalars()
            }
        for row in _made_of(session, IntakeEpisode):
            if row.child_key == child_key:
                rows.setdefault(row.episode_id, row)
        return [episode_record(r) for r in rows.values()]

    def refresh_repeat_clocks(
        self,
        session: Session,
        child_key: str,
        *,
        episodes: Sequence[EpisodeRecord] | None = None,
    ) -> None:
        """Raise a repeat-missing clock for each pattern the child's episodes form.

        A review a person already recorded stays recorded. ``episodes`` are the child's
        stored episodes when the caller has just read them.
        """
        if episodes is None:
            episodes = self.child_episodes(session, child_key)
        for pattern in repeat_missing_patterns(episodes, self.context.clocks):
            probe = repeat_missing_clock(pattern, None, self.context.calendar)
            stored = _find(session, IntakeClock, probe.clock_id)
            reviewed = stored.met_at if stored is not None else None
            clock = repeat_missing_clock(pattern, reviewed, self.context.calendar)
            put_clock(
                session,
                clock,
                child_key=child_key,
                episode_id=pattern.episode_ids[-1],
                keep_met=True,
            )

    # ------------------------------------------------------------------ CSE tracker

    def _apply_tracker(self, session: Session, child_key: str, event: Event) -> None:
        body = event.body
        if not isinstance(body, CaseStatus) or body.cse_tracker is None:
            return
        entry = body.cse_tracker
        row = session.execute(
            select(IntakeTracker).where(
                col(IntakeTracker.child_key) == child_key,
                col(IntakeTracker.identified_on) == entry.identified_on,
            )
        ).scalar_one_or_none()
        as_of = london_date(body.as_of)
        if row is None:
            row = IntakeTracker(
                child_key=child_key,
                identified_on=entry.identified_on,
                level=int(entry.level),
                history=[[entry.identified_on.isoformat(), int(entry.level)]],
            )
            _remember(session, row, f"{child_key}:{entry.identified_on.isoformat()}")
        elif row.level != int(entry.level):
            # A level change dated by the status it came with (Paris sends the current level).
            row.history = [
                *row.history,
                [max(as_of, entry.identified_on).isoformat(), int(entry.level)],
            ]
        row.level = int(entry.level)
        row.removed_on = entry.removed_on
        row.removal_reason = entry.removal_reason.value if entry.removal_reason else None
        row.updated_at = utc_now()
        session.add(row)
        session.flush()

    def tracker_level(self, session: Session, child_key: str, day: date) -> CseLevel | None:
        """The child's tracker level at the end of ``day``, if on the tracker."""
        rows: Iterable[IntakeTracker]
        if _new_in_batch(session, child_key):
            # A child this batch made is on the tracker only by spells the batch made.
            rows = [r for r in _made_of(session, IntakeTracker) if r.child_key == child_key]
        else:
            rows = session.execute(_CHILD_TRACKERS, {"child_key": child_key}).scalars()
        levels = [lv for lv in (tracker_record(r).level_on(day) for r in rows) if lv is not None]
        return max(levels) if levels else None

    # ------------------------------------------------------------------ priority

    def priority_of(
        self,
        session: Session,
        event: Event,
        child_key: str | None,
        *,
        episodes: Sequence[EpisodeRecord] | None = None,
    ) -> Priority:
        """The priority of an event about a (possibly unknown) child, with its reasons.

        ``episodes`` are the child's stored episodes when the caller has just read them.
        """
        known_level = None
        recent = 0
        at = event.metadata.occurred_at
        if child_key is not None:
            known_level = self.tracker_level(session, child_key, london_date(at))
            recent = episodes_in_window(
                episodes if episodes is not None else self.child_episodes(session, child_key),
                child_key,
                at,
                self.context.clocks.repeat_window,
            )
        factors = factors_from_event(event, known_cse_level=known_level, recent_episodes=recent)
        return prioritise(factors, self.context.weights)

    def _score(
        self,
        session: Session,
        event: Event | None,
        child_key: str | None,
        *,
        episodes: Sequence[EpisodeRecord] | None = None,
    ) -> dict[str, Any]:
        """The triage row's band, rank, score and reasons for ``event``."""
        if event is None:
            return {
                "band": Band.STANDARD.value,
                "band_rank": Band.STANDARD.rank,
                "score": 0,
                "reasons": ["partial disclosure: read it to triage"],
            }
        priority = self.priority_of(session, event, child_key, episodes=episodes)
        return {
            "band": priority.band.value,
            "band_rank": priority.band.rank,
            "score": priority.score,
            "reasons": list(priority.reasons),
        }
