"""The engine's decisions on small agreements: default deny, refusals, merging, periods."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from broker.exceptions import PolicyDenied
from broker.policy import (
    Agreement,
    BoroughCondition,
    BoroughRole,
    Conditions,
    Partnership,
    Party,
    PartyKind,
    Policy,
    Recipient,
    RefusalReason,
    Retention,
    Rule,
    Selector,
    compile_policy,
    evaluate,
    event_facts,
)
from schemas import CseLevel, EventType, LawfulBasis, RiskGrade, example_event
from tests.broker.policy.helpers import variant

AT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
MISSING = example_event("missing.reported")  # from tvp-police; placing authority Slough


def party(
    pid: str,
    kind: PartyKind = PartyKind.LOCAL_AUTHORITY,
    *,
    relevant: bool = True,
    borough: str | None = None,
) -> Party:
    return Party(id=pid, name=pid.title(), kind=kind, relevant_authority=relevant, borough=borough)


PARTIES = (
    party("wam-mash", PartyKind.MASH, borough="E06000040"),
    party("tvp-police", PartyKind.POLICE),
    party("thames-youth-trust", PartyKind.VOLUNTARY_SECTOR, relevant=False, borough="E06000040"),
    party("slough-broker", PartyKind.NEIGHBOURING_BROKER, borough="E06000039"),
    party("slough-panel", PartyKind.BOROUGH_PANEL, borough="E06000039"),
)


def rule(
    rid: str,
    *recipients: Recipient,
    basis: LawfulBasis = LawfulBasis.CA_2004_S11,
    when: Conditions | None = None,
    retention: Retention | None = None,
    **extra: object,
) -> Rule:
    return Rule.model_validate(
        {
            "id": rid,
            "description": f"Rule {rid}.",
            "purpose": f"Purpose of {rid}.",
            "lawful_basis": basis,
            "retention": retention or Retention(amount=1, unit="year"),
            "when": when or Conditions(),
            "share_with": recipients,
            **extra,
        }
    )


def to(pid: str, *fields: str) -> Recipient:
    return Recipient(party=pid, fields=fields)


def agreement(*rules: Rule, parties: tuple[Party, ...] = PARTIES, **extra: object) -> Agreement:
    return Agreement.model_validate(
        {
            "version": "7",
            "effective_from": date(2026, 1, 1),
            "partnership": Partnership(name="Test", borough="E06000040"),
            "parties": parties,
            "rules": rules,
            **extra,
        }
    )


def reasons(decision_refusals: object) -> list[tuple[str | None, str | None, RefusalReason]]:
    return [(r.recipient, r.rule_id, r.reason) for r in decision_refusals]  # type: ignore[attr-defined]


def test_with_no_rules_nothing_is_shared_and_the_refusal_is_recorded() -> None:
    decision = evaluate(agreement(), MISSING, AT)
    assert decision.disclosures == ()
    assert reasons(decision.refusals) == [(None, None, RefusalReason.NO_MATCHING_RULE)]


def test_a_matching_rule_shares_the_named_fields_plus_the_routing_fields() -> None:
    decision = evaluate(agreement(rule("r1", to("wam-mash", "subject.nhs_number"))), MISSING, AT)
    d = decision.require("wam-mash")
    assert d.rule_id == "r1"
    assert d.lawful_basis is LawfulBasis.CA_2004_S11
    assert d.event == {
        "metadata": {
            "event_id": str(MISSING.metadata.event_id),
            "schema_version": 1,
            "classification": "OFFICIAL-SENSITIVE",
        },
        "subject": {"nhs_number": MISSING.subject.nhs_number},  # type: ignore[union-attr]
        "body": {"type": "missing.reported"},
    }
    assert decision.refusals == ()


def test_an_unknown_party_gets_nothing() -> None:
    decision = evaluate(agreement(rule("r1", to("ghost-agency", "subject.*"))), MISSING, AT)
    assert decision.disclosures == ()
    assert reasons(decision.refusals) == [("ghost-agency", "r1", RefusalReason.UNKNOWN_PARTY)]


def test_a_party_that_is_not_a_relevant_authority_gets_nothing_under_s115() -> None:
    s115 = rule(
        "r1",
        to("thames-youth-trust", "subject.given_name"),
        to("wam-mash", "subject.given_name"),
        basis=LawfulBasis.CDA_1998_S115,
    )
    decision = evaluate(agreement(s115), MISSING, AT)
    assert decision.recipients == ("wam-mash",)
    assert reasons(decision.refusals) == [
        ("thames-youth-trust", "r1", RefusalReason.NOT_RELEVANT_AUTHORITY)
    ]


def test_the_same_party_can_receive_under_another_basis() -> None:
    rules = (
        rule("r1", to("thames-youth-trust", "subject.given_name"), basis=LawfulBasis.CDA_1998_S115),
        rule("r2", to("thames-youth-trust", "body.episode_id"), basis=LawfulBasis.CA_1989_S17),
    )
    decision = evaluate(agreement(*rules), MISSING, AT)
    d = decision.require("thames-youth-trust")
    assert d.rule_ids == ("r2",)
    assert "subject.given_name" not in d.shared_fields()
    assert [r.reason for r in decision.refusals_for("thames-youth-trust")] == [
        RefusalReason.NOT_RELEVANT_AUTHORITY
    ]


def test_the_source_is_not_sent_its_own_event_unless_the_rule_says_so() -> None:
    back = rule("r1", to("tvp-police", "body.episode_id"))
    decision = evaluate(agreement(back), MISSING, AT)
    assert decision.disclosures == ()
    assert reasons(decision.refusals) == [("tvp-police", "r1", RefusalReason.SOURCE_OF_EVENT)]
    explicit = rule("r1", to("tvp-police", "body.episode_id"), send_to_source=True)
    assert evaluate(agreement(explicit), MISSING, AT).recipients == ("tvp-police",)


def test_several_rules_give_one_disclosure_with_the_union_of_fields() -> None:
    rules = (
        rule(
            "r1", to("wam-mash", "subject.nhs_number"), retention=Retention(amount=6, unit="year")
        ),
        rule(
            "r2",
            to("wam-mash", "body.risk_grade"),
            basis=LawfulBasis.CA_1989_S47,
            retention=Retention(amount=3, unit="month"),
        ),
        rule("r3", to("wam-mash", "body.episode_id"), retention=Retention(amount=2, unit="year")),
    )
    decision = evaluate(agreement(*rules), MISSING, AT)
    [d] = decision.disclosures
    assert d.rule_ids == ("r1", "r2", "r3")
    assert d.lawful_bases == (LawfulBasis.CA_2004_S11, LawfulBasis.CA_1989_S47)
    assert d.purposes == ("Purpose of r1.", "Purpose of r2.", "Purpose of r3.")
    assert str(d.retention) == "3 months"  # the shortest: every rule's limit is kept
    assert {"subject.nhs_number", "body.risk_grade", "body.episode_id"} <= set(d.shared_fields())


def test_a_party_named_twice_in_one_rule_gets_one_disclosure_citing_the_rule_once() -> None:
    r = rule(
        "r1",
        to("slough-panel", "subject.nhs_number"),
        Recipient(
            select=Selector(kinds=(PartyKind.BOROUGH_PANEL,), borough_of=(BoroughRole.PLACING,)),
            fields=("body.risk_grade",),
        ),
    )
    [d] = evaluate(agreement(r), MISSING, AT).disclosures
    assert d.rule_ids == ("r1",)
    assert {"subject.nhs_number", "body.risk_grade"} <= set(d.shared_fields())


def test_a_selector_finds_the_panel_of_the_placing_authority() -> None:
    r = rule(
        "r1",
        Recipient(
            select=Selector(kinds=(PartyKind.BOROUGH_PANEL,), borough_of=(BoroughRole.PLACING,)),
            fields=("subject.nhs_number",),
        ),
    )
    assert evaluate(agreement(r), MISSING, AT).recipients == ("slough-panel",)


def test_a_selector_that_finds_nobody_is_recorded() -> None:
    r = rule(
        "r1",
        Recipient(
            select=Selector(
                kinds=(PartyKind.BOROUGH_PANEL,), borough_of=(BoroughRole.MISSING_FROM,)
            ),
            fields=("subject.nhs_number",),
        ),
    )
    decision = evaluate(agreement(r), MISSING, AT)
    assert decision.disclosures == ()
    [refusal] = decision.refusals
    assert refusal.reason is RefusalReason.NO_RECIPIENT_FOUND
    assert "E06000040" in refusal.detail


@pytest.mark.parametrize(
    ("effective_from", "expires_on", "shared"),
    [
        (None, date(2026, 11, 20), False),  # expired that day
        (None, date(2026, 11, 21), True),
        (date(2026, 11, 21), None, False),  # not yet
        (date(2026, 11, 20), None, True),
    ],
)
def test_a_rule_outside_its_period_shares_nothing(
    effective_from: date | None, expires_on: date | None, shared: bool
) -> None:
    r = rule(
        "r1",
        to("wam-mash", "subject.nhs_number"),
        effective_from=effective_from,
        expires_on=expires_on,
    )
    decision = evaluate(agreement(r), MISSING, AT)
    assert bool(decision.disclosures) is shared
    if not shared:
        assert reasons(decision.refusals) == [("wam-mash", "r1", RefusalReason.RULE_NOT_IN_FORCE)]


def test_an_expired_agreement_shares_nothing() -> None:
    a = agreement(rule("r1", to("wam-mash", "subject.nhs_number")), expires_on=date(2026, 11, 1))
    decision = evaluate(a, MISSING, AT)
    assert decision.disclosures == ()
    assert reasons(decision.refusals) == [(None, None, RefusalReason.AGREEMENT_NOT_IN_FORCE)]


def test_no_agreement_means_no_disclosure() -> None:
    decision = evaluate(None, MISSING, AT)
    assert decision.disclosures == ()
    assert decision.agreement_version is None
    assert reasons(decision.refusals) == [(None, None, RefusalReason.NO_AGREEMENT)]


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(agreement(), MISSING, datetime(2026, 11, 20))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(None, MISSING, datetime(2026, 11, 20))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("when", "event_type", "changes", "matches"),
    [
        (Conditions(risk_grades=(RiskGrade.HIGH,)), "missing.reported", {}, True),
        (
            Conditions(risk_grades=(RiskGrade.HIGH,)),
            "missing.reported",
            {"body__risk_grade": "low"},
            False,
        ),
        (
            Conditions(risk_grades=(RiskGrade.HIGH,)),
            "missing.updated",
            {"body__risk_grade": None},
            False,
        ),
        (Conditions(risk_grades=(RiskGrade.HIGH,)), "case.status", {}, False),
        (Conditions(cse_levels=(CseLevel.LEVEL_3,)), "cse.screening", {}, True),
        (Conditions(cse_levels=(CseLevel.LEVEL_3,)), "case.status", {}, True),
        (
            Conditions(cse_levels=(CseLevel.LEVEL_3,)),
            "case.status",
            {
                "body__cse_tracker": {
                    "level": 3,
                    "identified_on": "2026-01-05",
                    "removed_on": "2026-03-01",
                    "removal_reason": "successful_intervention",
                }
            },
            False,
        ),
        (Conditions(safeguarding_flags=()), "care.attendance", {}, False),
        (Conditions(event_types=()), "missing.reported", {}, False),
        (Conditions(from_parties=("fhft-hospital",)), "care.attendance", {}, True),
        (Conditions(from_parties=("fhft-hospital",)), "missing.reported", {}, False),
        (
            Conditions(
                linked_to=BoroughCondition(boroughs=("E06000039",), via=(BoroughRole.FOUND_IN,))
            ),
            "missing.found",
            {},
            True,
        ),
        (
            Conditions(
                linked_to=BoroughCondition(boroughs=("E06000039",), via=(BoroughRole.MISSING_FROM,))
            ),
            "missing.reported",
            {},
            False,
        ),
        (
            Conditions(linked_to=BoroughCondition(boroughs=("E06000039",))),
            "intelligence",
            {"subject": None},
            True,
        ),
        (
            Conditions(
                linked_to=BoroughCondition(boroughs=("E06000040",), via=(BoroughRole.HOME,))
            ),
            "cse.screening",
            {},
            False,
        ),  # looked after by Slough: home is the placing authority
        (
            Conditions(
                linked_to=BoroughCondition(boroughs=("E06000040",), via=(BoroughRole.LIVES_IN,))
            ),
            "cse.screening",
            {},
            True,
        ),
    ],
)
def test_conditions(
    when: Conditions, event_type: str, changes: dict[str, object], matches: bool
) -> None:
    event = variant(event_type, **changes)
    decision = evaluate(agreement(rule("r1", to("wam-mash", "body.type"), when=when)), event, AT)
    assert bool(decision.disclosures) is matches


def test_facts_of_an_intelligence_event_name_its_area_and_locations() -> None:
    facts = event_facts(variant("intelligence", body__area="E06000036"))
    assert facts.boroughs[BoroughRole.AREA] == {"E06000036", "E06000039"}
    assert facts.event_type is EventType.INTELLIGENCE


def test_require_raises_policy_denied_with_ids_only() -> None:
    decision = evaluate(agreement(), MISSING, AT)
    with pytest.raises(PolicyDenied, match="not shared with wam-mash: no rule shares it"):
        decision.require("wam-mash")


def test_decisions_serialise_without_values_when_asked() -> None:
    decision = evaluate(agreement(rule("r1", to("wam-mash", "subject.nhs_number"))), MISSING, AT)
    data = decision.to_dict(with_events=False)
    assert data["disclosures"][0]["shared_fields"][-1] == "subject.nhs_number"
    assert MISSING.subject is not None
    assert MISSING.subject.nhs_number is not None
    assert MISSING.subject.nhs_number not in str(data)
    assert "event" in decision.to_dict()["disclosures"][0]


def test_a_compiled_policy_is_reused_and_equivalent() -> None:
    a = agreement(rule("r1", to("wam-mash", "subject.nhs_number")))
    assert compile_policy(a) is compile_policy(a)
    assert Policy(a).evaluate(MISSING, AT) == evaluate(a, MISSING, AT)


def test_a_field_set_that_does_not_exist_adds_nothing() -> None:
    r = rule("r1", Recipient(party="wam-mash", field_sets=("no-such-set",)))
    d = evaluate(agreement(r), MISSING, AT).require("wam-mash")
    assert set(d.shared_fields()) == {
        "metadata.event_id",
        "metadata.schema_version",
        "metadata.classification",
        "body.type",
    }
