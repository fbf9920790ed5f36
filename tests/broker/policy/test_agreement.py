"""The shipped agreement, read as a table: for each kind of event, who gets which fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.policy import (
    ALWAYS_INCLUDED,
    Agreement,
    RefusalReason,
    check_file,
    evaluate,
    leaf_paths,
)
from schemas import Event, LawfulBasis, example_event
from tests.broker.policy.conftest import AGREEMENT_PATH, AT
from tests.broker.policy.helpers import variant

WAM, SLOUGH, BRACKNELL, READING = "E06000040", "E06000039", "E06000036", "E06000038"

ROUTING = set(ALWAYS_INCLUDED)
IDENTITY = {
    "subject.given_name",
    "subject.family_name",
    "subject.date_of_birth",
    "subject.sex",
    "subject.nhs_number",
    "subject.paris_id",
    "subject.police_person_ref",
}
HEALTH_MATCH = {
    "subject.given_name",
    "subject.family_name",
    "subject.date_of_birth",
    "subject.nhs_number",
}
AUTHORITIES = {
    "subject.home_address.local_authority",
    "subject.looked_after.responsible_authority",
    "subject.looked_after.placed_in",
    "subject.looked_after.placement_type",
}
REPORT_SUMMARY = {
    "metadata.correlation_id",
    "metadata.source.agency",
    "body.episode_id",
    "body.risk_grade",
    "body.reported_at",
    "body.last_seen_at",
    "body.missing_from",
}
HEALTH_ALERT = HEALTH_MATCH | {
    "body.episode_id",
    "body.risk_grade",
    "body.reported_at",
    "metadata.source.agency",
}
FULL = "everything in the event"

#: What a borough's panel (directly, or through its own broker) learns of intelligence.
INTELLIGENCE_FOR_PANELS = {
    "metadata.occurred_at",
    "metadata.source.agency",
    "body.area",
    "body.locations.kind",
    "body.locations.description",
    "body.locations.local_authority",
    "body.locations.postcode",
    "body.vehicles.registration",
    "body.vehicles.make",
    "body.vehicles.colour",
    "body.note",
}


@dataclass
class Case:
    """One row of the table: an event, what each recipient gets, who is refused and why."""

    event: Event
    receives: dict[str, set[str] | str]
    refused: dict[str, RefusalReason] = field(default_factory=dict)
    bases: dict[str, LawfulBasis] = field(default_factory=dict)


def _lac_from(code: str) -> dict[str, object]:
    return {"responsible_authority": code, "placed_in": WAM, "placement_type": "residential"}


CASES: dict[str, Case] = {
    "a high-risk missing report from the police reaches the MASH in full, children's services "
    "without the police narrative, the hospital and ICB with identity only, probation, and "
    "Slough's broker as the placing authority; not the youth trust (s.115)": Case(
        example_event("missing.reported"),
        receives={
            "wam-mash": FULL,
            "wam-childrens-services": IDENTITY
            | AUTHORITIES
            | REPORT_SUMMARY
            | {"body.philomena_protocol"}
            | ROUTING,
            "fhft-hospital": HEALTH_ALERT | ROUTING,
            "bob-icb": HEALTH_ALERT | ROUTING,
            "tv-probation": {
                "subject.given_name",
                "subject.family_name",
                "subject.date_of_birth",
                "body.episode_id",
                "body.risk_grade",
                "body.reported_at",
            }
            | ROUTING,
            "slough-broker": IDENTITY | AUTHORITIES | REPORT_SUMMARY | ROUTING,
        },
        refused={"thames-youth-trust": RefusalReason.NOT_RELEVANT_AUTHORITY},
        bases={
            "fhft-hospital": LawfulBasis.CA_2004_S11,
            "tv-probation": LawfulBasis.CDA_1998_S115,
            "wam-childrens-services": LawfulBasis.CA_1989_S17,
        },
    ),
    "a low-risk missing report reaches the MASH, children's services and the placing "
    "authority's broker, but no health or s.115 partner": Case(
        variant("missing.reported", body__risk_grade="low"),
        receives={
            "wam-mash": FULL,
            "wam-childrens-services": IDENTITY
            | AUTHORITIES
            | REPORT_SUMMARY
            | {"body.philomena_protocol"}
            | ROUTING,
            "slough-broker": IDENTITY | AUTHORITIES | REPORT_SUMMARY | ROUTING,
        },
    ),
    "a high-risk update with a sighting in Slough: health and probation are told again, and "
    "no youth service works in Slough, so the s.115 selector finds nobody": Case(
        example_event("missing.updated"),
        receives={
            "wam-mash": FULL,
            "wam-childrens-services": IDENTITY
            | AUTHORITIES
            | ROUTING
            | {
                "metadata.correlation_id",
                "metadata.source.agency",
                "body.episode_id",
                "body.risk_grade",
            },
            "fhft-hospital": ROUTING
            | HEALTH_MATCH
            | {"body.episode_id", "body.risk_grade", "metadata.source.agency"},
            "bob-icb": ROUTING
            | HEALTH_MATCH
            | {"body.episode_id", "body.risk_grade", "metadata.source.agency"},
            "tv-probation": ROUTING
            | {
                "subject.given_name",
                "subject.family_name",
                "subject.date_of_birth",
                "body.episode_id",
                "body.risk_grade",
            },
            "slough-broker": IDENTITY
            | AUTHORITIES
            | ROUTING
            | {
                "metadata.correlation_id",
                "metadata.source.agency",
                "body.episode_id",
                "body.risk_grade",
            },
        },
    ),
    "a Bracknell child, not looked after, missing from Windsor and Maidenhead: Bracknell's "
    "broker is told, Slough's is not": Case(
        variant(
            "missing.reported",
            body__risk_grade="medium",
            subject__looked_after=None,
            subject__home_address__local_authority=BRACKNELL,
        ),
        receives={
            "wam-mash": FULL,
            "wam-childrens-services": (
                IDENTITY
                | REPORT_SUMMARY
                | ROUTING
                | {"body.philomena_protocol", "subject.home_address.local_authority"}
            ),
            "bracknell-broker": IDENTITY
            | REPORT_SUMMARY
            | ROUTING
            | {"subject.home_address.local_authority"},
        },
    ),
    "a Reading child missing in Reading is not this partnership's to share": Case(
        variant(
            "missing.reported",
            subject__looked_after=None,
            subject__home_address__local_authority=READING,
            body__missing_from=READING,
            body__last_seen__local_authority=READING,
        ),
        receives={},
        refused={},
    ),
    "a child found in Slough: the MASH in full, Slough's broker with the facts of the return": Case(
        example_event("missing.found"),
        receives={
            "wam-mash": FULL,
            "wam-childrens-services": IDENTITY
            | AUTHORITIES
            | ROUTING
            | {
                "metadata.correlation_id",
                "metadata.source.agency",
                "body.episode_id",
                "body.found_at",
                "body.found_by",
                "body.returned_at",
            },
            "slough-broker": IDENTITY
            | AUTHORITIES
            | ROUTING
            | {
                "metadata.correlation_id",
                "metadata.source.agency",
                "body.episode_id",
                "body.found_at",
                "body.found_by",
                "body.returned_at",
            },
        },
    ),
    "a level 3 CSE screening: the MASH in full, the police and Slough's panel with the level "
    "and indicators, Slough's broker as the placing authority": Case(
        example_event("cse.screening"),
        receives={
            "wam-mash": FULL,
            "tvp-police": IDENTITY
            | AUTHORITIES
            | ROUTING
            | {"body.level", "body.indicators", "body.screened_at", "body.screened_by"},
            "slough-panel": IDENTITY
            | AUTHORITIES
            | ROUTING
            | {"body.level", "body.indicators", "body.screened_at"},
            # The receiving broker needs a complete screening to route it under its own
            # agreement, so the screening agency's id goes too.
            "slough-broker": IDENTITY
            | AUTHORITIES
            | ROUTING
            | {"body.level", "body.indicators", "body.screened_at", "body.screened_by"},
        },
        bases={"tvp-police": LawfulBasis.CDA_1998_S115, "wam-mash": LawfulBasis.CA_1989_S47},
    ),
    "a level 1 CSE screening is not shared": Case(
        variant("cse.screening", body__level=1),
        receives={},
    ),
    "an A&E attendance flagged for CSE goes to the MASH only": Case(
        example_event("care.attendance"),
        receives={"wam-mash": FULL},
    ),
    "an attendance with no safeguarding flag is not shared": Case(
        variant("care.attendance", body__flags=[]),
        receives={},
    ),
    "a case status goes to the MASH in full (it keeps the tracker); it tells the police the "
    "plan and tracker level, and health the plan only; no case content": Case(
        example_event("case.status"),
        receives={
            "wam-mash": FULL,
            "tvp-police": IDENTITY
            | ROUTING
            | {
                "subject.looked_after.responsible_authority",
                "body.as_of",
                "body.child_protection_plan",
                "body.cse_tracker.level",
                "body.cse_tracker.removed_on",
            },
            "fhft-hospital": HEALTH_MATCH
            | ROUTING
            | {
                "subject.looked_after.responsible_authority",
                "body.as_of",
                "body.child_protection_plan",
            },
            "bob-icb": HEALTH_MATCH
            | ROUTING
            | {
                "subject.looked_after.responsible_authority",
                "body.as_of",
                "body.child_protection_plan",
            },
        },
    ),
    "police intelligence about Slough goes to Slough's panel and, across the link, to "
    "Slough's broker, described not identified; the police are not sent their own "
    "intelligence back": Case(
        example_event("intelligence"),
        receives={
            "wam-mash": FULL,
            "slough-panel": ROUTING | INTELLIGENCE_FOR_PANELS,
            "slough-broker": ROUTING | INTELLIGENCE_FOR_PANELS,
        },
        refused={"tvp-police": RefusalReason.SOURCE_OF_EVENT},
    ),
    "a return home interview: the MASH in full, the police only whether it happened": Case(
        example_event("rhi.completed"),
        receives={
            "wam-mash": FULL,
            "tvp-police": ROUTING
            | {
                "subject.police_person_ref",
                "metadata.correlation_id",
                "body.episode_id",
                "body.offered_at",
                "body.completed_at",
                "body.declined",
                "body.cse_concerns_disclosed",
            },
        },
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_the_agreement_shares_as_written(agreement: Agreement, case: Case) -> None:
    decision = evaluate(agreement, case.event, AT)
    assert set(decision.recipients) == set(case.receives)
    everything = leaf_paths(case.event.model_dump(mode="json"))
    for party, expected in case.receives.items():
        got = set(decision.require(party).shared_fields())
        assert got == (everything if expected == FULL else expected), party
    for party, reason in case.refused.items():
        assert reason in {r.reason for r in decision.refusals_for(party)}, party
        assert decision.disclosure_for(party) is None
    for party, basis in case.bases.items():
        assert decision.require(party).lawful_basis is basis


def test_nothing_matches_an_unlinked_event_and_the_refusal_says_so(agreement: Agreement) -> None:
    event = CASES["a Reading child missing in Reading is not this partnership's to share"].event
    decision = evaluate(agreement, event, AT)
    assert [r.reason for r in decision.refusals] == [RefusalReason.NO_MATCHING_RULE]


def test_the_youth_trust_is_refused_under_s115_where_the_child_went_missing(
    agreement: Agreement,
) -> None:
    decision = evaluate(agreement, example_event("missing.reported"), AT)
    [refusal] = decision.refusals_for("thames-youth-trust")
    assert refusal.rule_id == "high-risk-missing-local-partners"
    assert "relevant authority" in refusal.detail


def test_the_mash_copy_of_a_missing_report_is_the_whole_event(agreement: Agreement) -> None:
    event = example_event("missing.reported")
    decision = evaluate(agreement, event, AT)
    assert decision.require("wam-mash").event == event.model_dump(mode="json")


def test_no_recipient_of_a_missing_report_but_the_mash_sees_the_police_narrative(
    agreement: Agreement,
) -> None:
    decision = evaluate(agreement, example_event("missing.reported"), AT)
    for d in decision.disclosures:
        if d.recipient != "wam-mash":
            assert "body.circumstances" not in d.shared_fields()
            assert "subject.home_address.lines" not in d.shared_fields()


def test_a_child_removed_from_the_tracker_does_not_count_as_level_3(agreement: Agreement) -> None:
    event = variant(
        "case.status",
        body__cse_tracker={
            "level": 3,
            "identified_on": "2026-01-05",
            "removed_on": "2026-03-01",
            "removal_reason": "successful_intervention",
        },
    )
    police = evaluate(agreement, event, AT).require("tvp-police")
    # The case status still goes out; the police see the removal date.
    assert police.event["body"]["cse_tracker"]["removed_on"] == "2026-03-01"


def test_an_event_from_an_agency_outside_the_agreement_is_still_routed(
    agreement: Agreement,
) -> None:
    event = variant("missing.reported", metadata__source__agency="slough-childrens-services")
    assert "wam-mash" in evaluate(agreement, event, AT).recipients


@pytest.mark.parametrize(
    "at",
    [datetime(2026, 3, 31, 22, 59, tzinfo=UTC), datetime(2029, 3, 31, 23, 0, tzinfo=UTC)],
    ids=["the evening before it takes effect (UK time)", "the first minute of its expiry date"],
)
def test_outside_its_period_the_agreement_shares_nothing(
    agreement: Agreement, at: datetime
) -> None:
    decision = evaluate(agreement, example_event("missing.reported"), at)
    assert decision.disclosures == ()
    assert [r.reason for r in decision.refusals] == [RefusalReason.AGREEMENT_NOT_IN_FORCE]


def test_the_first_minute_of_its_first_day_is_in_force(agreement: Agreement) -> None:
    # 1 April 2026 00:00 in London (BST) is 23:00 UTC the day before.
    at = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
    assert evaluate(agreement, example_event("missing.reported"), at).disclosures


def test_the_shipped_agreement_passes_the_check_with_only_the_s115_warning() -> None:
    findings = check_file(AGREEMENT_PATH, today=AT.date())
    assert [(f.code, f.where) for f in findings] == [
        ("not-relevant-authority", "rule high-risk-missing-local-partners")
    ]


def test_the_shipped_agreement_uses_the_partnership_party_ids(agreement: Agreement) -> None:
    ids = {p.id for p in agreement.parties}
    assert ids == {
        "wam-childrens-services",
        "wam-mash",
        "tvp-police",
        "fhft-hospital",
        "bob-icb",
        "tv-probation",
        "slough-panel",
        "bracknell-panel",
        "slough-broker",
        "bracknell-broker",
        "thames-youth-trust",
    }
    assert Path(AGREEMENT_PATH).name == "agreement.yaml"
    assert agreement.partnership.borough == WAM
