"""Properties over random events and random agreements, checked against a plain oracle.

The oracle below re-states the agreement's meaning directly from the event and the
documented rules (docs/policy.md), without the engine's facts, compiled rules or trees.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from broker.policy import (
    ALWAYS_INCLUDED,
    Agreement,
    BoroughRole,
    Conditions,
    Decision,
    RefusalReason,
    Rule,
    evaluate,
    minimise,
)
from schemas import (
    CaseStatus,
    CseScreening,
    Event,
    EventType,
    Intelligence,
    LawfulBasis,
    MissingFound,
    MissingReported,
    MissingUpdated,
    UnscheduledCareAttendance,
)
from tests.broker.policy.strategies import MASH, agreements, events, instants

LONDON = ZoneInfo("Europe/London")
MISSING_AND_CSE = {
    EventType.MISSING_REPORTED,
    EventType.MISSING_UPDATED,
    EventType.MISSING_FOUND,
    EventType.CSE_SCREENING,
}

# ----------------------------------------------------------------------------- the oracle


def _uk_day(at: datetime) -> date:
    return at.astimezone(LONDON).date()


def _covers(start: date | None, end: date | None, at: datetime) -> bool:
    day = _uk_day(at)
    return (start is None or start <= day) and (end is None or day < end)


def _boroughs(event: Event, role: BoroughRole) -> set[str]:
    child, body = event.subject, event.body
    found: set[str | None] = set()
    if role in (BoroughRole.HOME, BoroughRole.LINKED) and child is not None:
        if child.looked_after is not None:
            found.add(child.looked_after.responsible_authority)
        elif child.home_address is not None:
            found.add(child.home_address.local_authority)
    if role in (BoroughRole.LIVES_IN, BoroughRole.LINKED) and child and child.home_address:
        found.add(child.home_address.local_authority)
    if role in (BoroughRole.PLACING, BoroughRole.LINKED) and child and child.looked_after:
        found.add(child.looked_after.responsible_authority)
    if role in (BoroughRole.PLACED_IN, BoroughRole.LINKED) and child and child.looked_after:
        found.add(child.looked_after.placed_in)
    if role in (BoroughRole.MISSING_FROM, BoroughRole.LINKED) and isinstance(body, MissingReported):
        found.add(body.missing_from)
    if role in (BoroughRole.SEEN_IN, BoroughRole.LINKED):
        if isinstance(body, MissingReported) and body.last_seen:
            found.add(body.last_seen.local_authority)
        if isinstance(body, MissingUpdated) and body.sighting:
            found.add(body.sighting.local_authority)
    found_in = role in (BoroughRole.FOUND_IN, BoroughRole.LINKED)
    if found_in and isinstance(body, MissingFound) and body.found_place:
        found.add(body.found_place.local_authority)
    if role in (BoroughRole.AREA, BoroughRole.LINKED) and isinstance(body, Intelligence):
        found.add(body.area)
        found.update(loc.local_authority for loc in body.locations)
    return {code for code in found if code is not None}


def _linked(event: Event, roles: tuple[BoroughRole, ...]) -> set[str]:
    return set().union(*(_boroughs(event, r) for r in roles))


def _matches(when: Conditions, event: Event) -> bool:
    body = event.body
    grade = body.risk_grade if isinstance(body, MissingReported | MissingUpdated) else None
    level = None
    if isinstance(body, CseScreening):
        level = body.level
    elif isinstance(body, CaseStatus) and body.cse_tracker and not body.cse_tracker.removed_on:
        level = body.cse_tracker.level
    flags = set(body.flags) if isinstance(body, UnscheduledCareAttendance) else set()
    checks = [
        when.event_types is None or body.type in when.event_types,
        when.risk_grades is None or (grade is not None and grade in when.risk_grades),
        when.cse_levels is None or (level is not None and level in when.cse_levels),
        when.safeguarding_flags is None or bool(flags & set(when.safeguarding_flags)),
        when.from_parties is None or event.metadata.source.agency in when.from_parties,
        when.linked_to is None
        or bool(_linked(event, when.linked_to.via) & set(when.linked_to.boroughs)),
    ]
    return all(checks)


def expected_shares(
    agreement: Agreement, event: Event, at: datetime
) -> dict[str, tuple[list[str], set[str]]]:
    """Recipient -> (rule ids in order, union of allowed paths), as the agreement reads."""
    out: dict[str, tuple[list[str], set[str]]] = {}
    if not _covers(agreement.effective_from, agreement.expires_on, at):
        return out
    parties = {p.id: p for p in agreement.parties}
    source = event.metadata.source.agency
    for rule in agreement.rules:
        if not _covers(rule.effective_from, rule.expires_on, at) or not _matches(rule.when, event):
            continue
        for recipient in rule.share_with:
            if recipient.party is not None:
                candidates = [recipient.party]
            else:
                assert recipient.select is not None
                boroughs = _linked(event, recipient.select.borough_of)
                candidates = [
                    p.id
                    for p in agreement.parties
                    if p.kind in recipient.select.kinds and p.borough in boroughs
                ]
            for party_id in candidates:
                party = parties.get(party_id)
                if party is None:
                    continue
                if rule.lawful_basis is LawfulBasis.CDA_1998_S115 and not party.relevant_authority:
                    continue
                if party_id == source and not rule.send_to_source:
                    continue
                rule_ids, paths = out.setdefault(party_id, ([], set()))
                if rule.id not in rule_ids:
                    rule_ids.append(rule.id)
                paths.update(recipient.fields)
                for name in recipient.field_sets:
                    paths.update(agreement.field_sets.get(name, ()))
    return out


def _allowed(path: str, allowed: Set[str]) -> bool:
    """A leaf is allowed if named exactly, or covered by its own or an ancestor's ``.*``."""
    parts = path.split(".")
    return (
        path in allowed
        or f"{path}.*" in allowed
        or any(".".join(parts[:i]) + ".*" in allowed for i in range(1, len(parts)))
    )


def _leaves(doc: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, value) of every single field, list elements sharing their list's path."""
    if isinstance(doc, dict):
        out = []
        for key, value in doc.items():
            out += _leaves(value, f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(doc, list) and any(isinstance(v, dict) for v in doc):
        return [leaf for item in doc for leaf in _leaves(item, prefix)]
    return [(prefix, doc)]


# ----------------------------------------------------------------------------- the checks


def check_decision(agreement: Agreement, event: Event, at: datetime, decision: Decision) -> None:
    """Every property the brief names, for one (agreement, event, instant)."""
    expected = expected_shares(agreement, event, at)
    party_ids = {p.id for p in agreement.parties}
    # Nothing reaches a party the agreement does not name, and exactly the oracle's parties.
    assert set(decision.recipients) <= party_ids
    assert set(decision.recipients) == set(expected)
    assert len(decision.recipients) == len(set(decision.recipients))  # one each
    source_leaves = dict.fromkeys(path for path, _ in _leaves(event.model_dump(mode="json")))
    for disclosure in decision.disclosures:
        rule_ids, paths = expected[disclosure.recipient]
        allowed = paths | ALWAYS_INCLUDED
        assert list(disclosure.rule_ids) == rule_ids
        assert set(disclosure.fields) == allowed
        # No field outside the recipient's allow-list, and nothing that was not in the event.
        for path, _value in _leaves(disclosure.event):
            assert _allowed(path, allowed), (disclosure.recipient, path)
            assert path in source_leaves, path
        rules = [r for r in agreement.rules if r.id in rule_ids]
        assert disclosure.retention == min((r.retention for r in rules), key=lambda r: r.max_days)
    # Every alert the agreement routes to the MASH reaches it.
    if MASH in expected:
        assert decision.require(MASH).rule_ids
    # Outside the agreement's period, nothing at all.
    if not agreement.in_force(at):
        assert decision.disclosures == ()
        assert decision.refusals[0].reason is RefusalReason.AGREEMENT_NOT_IN_FORCE


def _explicit_mash_rules(agreement: Agreement, event: Event, at: datetime) -> list[Rule]:
    """In-force rules that match the event and name the MASH, which may lawfully receive."""
    mash = agreement.party(MASH)
    if mash is None or event.metadata.source.agency == MASH:
        return []
    if not agreement.in_force(at):
        return []
    return [
        r
        for r in agreement.rules
        if r.in_force(at)
        and _matches(r.when, event)
        and any(x.party == MASH for x in r.share_with)
        and (r.lawful_basis is not LawfulBasis.CDA_1998_S115 or mash.relevant_authority)
    ]


_DEFAULT = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _property(agreement: Agreement, event: Event, at: datetime) -> None:
    decision = evaluate(agreement, event, at)
    check_decision(agreement, event, at, decision)
    if event.body.type in MISSING_AND_CSE:
        for rule in _explicit_mash_rules(agreement, event, at):
            assert rule.id in decision.require(MASH).rule_ids


@_DEFAULT
@given(agreement=agreements(), event=events(), at=instants)
def test_random_agreements_share_only_as_written(
    agreement: Agreement, event: Event, at: datetime
) -> None:
    _property(agreement, event, at)


SOAK_BATCHES = 20
SOAK_BATCH_SIZE = 5_000  # 20 x 5,000 = 100,000 cases


def run_seeded_batch(batch_seed: int, size: int) -> None:
    """Run ``size`` random cases of the property from ``batch_seed``: each batch starts
    afresh (hypothesis's memory of one run stays bounded) and a failure names its seed,
    so it can be rerun alone."""

    @seed(batch_seed)
    @settings(
        max_examples=size,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(agreement=agreements(), event=events(), at=instants)
    def run(agreement: Agreement, event: Event, at: datetime) -> None:
        _property(agreement, event, at)

    run()


@pytest.mark.soak
@pytest.mark.parametrize("batch", range(SOAK_BATCHES))
def test_random_agreements_share_only_as_written_soak(batch: int) -> None:
    """100,000 cases in seeded batches."""
    run_seeded_batch(batch, SOAK_BATCH_SIZE)


@settings(max_examples=200, deadline=None)
@given(
    agreement=agreements(),
    event=events().filter(lambda e: e.body.type in MISSING_AND_CSE),
    at=instants,
    extra=st.data(),
)
def test_missing_and_cse_alerts_routed_to_the_mash_reach_it(
    agreement: Agreement, event: Event, at: datetime, extra: st.DataObject
) -> None:
    """An agreement with a rule naming the MASH for every missing and CSE event."""
    from broker.policy import Recipient, Retention  # noqa: PLC0415 - local to this test

    to_mash = Rule(
        id="alerts-to-mash",
        description="Every missing and CSE alert to the MASH.",
        purpose="Testing.",
        lawful_basis=extra.draw(st.sampled_from(LawfulBasis)),
        retention=Retention(amount=1, unit="year"),
        when=Conditions(event_types=tuple(MISSING_AND_CSE)),
        share_with=(Recipient(party=MASH, fields=("subject.nhs_number",)),),
    )
    agreement = agreement.model_copy(update={"rules": (*agreement.rules, to_mash)})
    decision = evaluate(agreement, event, at)
    check_decision(agreement, event, at, decision)
    mash = agreement.party(MASH)
    lawful = mash is not None and (
        to_mash.lawful_basis is not LawfulBasis.CDA_1998_S115 or mash.relevant_authority
    )
    if agreement.in_force(at) and lawful and event.metadata.source.agency != MASH:
        d = decision.require(MASH)
        assert "alerts-to-mash" in d.rule_ids
        assert d.event["subject"]["nhs_number"] == event.subject.nhs_number  # type: ignore[union-attr]


@settings(max_examples=100, deadline=None)
@given(event=events(), at=instants)
def test_without_an_agreement_nothing_is_shared(event: Event, at: datetime) -> None:
    decision = evaluate(None, event, at)
    assert decision.disclosures == ()
    assert [r.reason for r in decision.refusals] == [RefusalReason.NO_AGREEMENT]


@settings(max_examples=150, deadline=None)
@given(agreement=agreements(), event=events(), at=instants)
def test_an_expired_rule_shares_nothing(agreement: Agreement, event: Event, at: datetime) -> None:
    expired = tuple(
        r.model_copy(update={"effective_from": None, "expires_on": _uk_day(at)})
        for r in agreement.rules
    )
    agreement = agreement.model_copy(update={"rules": expired})
    decision = evaluate(agreement, event, at)
    assert decision.disclosures == ()
    assert all(
        r.reason
        in {
            RefusalReason.RULE_NOT_IN_FORCE,
            RefusalReason.NO_MATCHING_RULE,
            RefusalReason.AGREEMENT_NOT_IN_FORCE,
            RefusalReason.NO_RECIPIENT_FOUND,
        }
        for r in decision.refusals
    )


_paths = st.sets(
    st.sampled_from(
        [
            "metadata.event_id",
            "metadata.source.agency",
            "metadata.source.*",
            "subject.*",
            "subject.nhs_number",
            "subject.home_address",
            "subject.home_address.town",
            "subject.looked_after.placed_in",
            "body.*",
            "body.type",
            "body.risk_grade",
            "body.last_seen.description",
            "body.locations.kind",
            "body.locations.*",
            "body.vehicles.colour",
            "body.indicators",
            "body.flags",
            "body.cse_tracker.level",
            "body.nonsense",
            "subject.home_address.lines",
        ]
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(event=events(), allowed=_paths)
def test_minimise_keeps_exactly_the_allowed_fields(event: Event, allowed: set[str]) -> None:
    source = event.model_dump(mode="json")
    before = event.model_dump(mode="json")
    kept = minimise(source, allowed)
    assert source == before  # the input is not modified
    kept_leaves = _leaves(kept)
    source_values: dict[str, list[Any]] = {}
    for path, value in _leaves(source):
        source_values.setdefault(path, []).append(value)
    for path, value in kept_leaves:
        assert _allowed(path, allowed), path
        assert value in source_values[path], path
    # Complete: every allowed single field of the event is kept. (A group named bare and
    # also through its fields is a group: when it is null, there is no field to keep.)
    kept_paths = {p for p, _ in kept_leaves}
    for path, _value in _leaves(source):
        by_wildcard = _allowed(path, {a for a in allowed if a.endswith(".*")})
        extended = any(a.startswith(f"{path}.") for a in allowed)
        if by_wildcard or (path in allowed and not extended):
            assert path in kept_paths, path
