"""``policy check``: one test per lint rule, each asserting the code, the place and the line."""

from __future__ import annotations

from datetime import date

import pytest

from broker.policy import AgreementInvalid, Finding, Severity, check_text, has_errors
from broker.policy import parse_agreement as parse
from tests.broker.policy.helpers import MINIMAL_AGREEMENT

TODAY = date(2026, 11, 20)

HEAD = """\
version: "1"
effective_from: 2026-01-01
partnership:
  name: Test partnership
  borough: E06000040
parties:
  - id: wam-mash
    name: The MASH
    kind: mash
    relevant_authority: true
    borough: E06000040
  - id: tvp-police
    name: The police
    kind: police
    relevant_authority: true
  - id: thames-youth-trust
    name: A youth charity
    kind: voluntary_sector
    relevant_authority: false
    borough: E06000040
rules:
"""

# Lines of a rule made by rule_yaml() after HEAD (with no `extra` lines).
BASIS, WHEN, EXTRA, RECIPIENT, FIELDS = 25, 27, 28, 29, 30


def rule_yaml(
    *,
    rid: str = "r1",
    basis: str = "ca-2004-s11",
    when: str = "event_types: [missing.reported]",
    recipient: str = "party: wam-mash",
    fields: str = "[subject.nhs_number]",
    extra: str = "",
) -> str:
    """One rule: see the line constants above (``extra`` lines start at EXTRA)."""
    return (
        f"  - id: {rid}\n"
        f"    description: A test rule.\n"
        f"    purpose: Testing.\n"
        f"    lawful_basis: {basis}\n"
        f"    retention: 1 year\n"
        f"    when: {{{when}}}\n"
        f"{extra}"
        f"    share_with:\n"
        f"      - {recipient}\n"
        f"        fields: {fields}\n"
    )


def lint(text: str) -> list[Finding]:
    return check_text(text, "agreement.yaml", today=TODAY)


def found(text: str) -> list[tuple[str, str, int | None, str]]:
    """(severity, code, line, where) of each finding, leaving out unused-party warnings."""
    return [
        (f.severity.value, f.code, f.line, f.where) for f in lint(text) if f.code != "unused-party"
    ]


def test_a_clean_agreement_has_no_findings() -> None:
    assert [f.code for f in lint(MINIMAL_AGREEMENT)] == ["unused-party"]  # the police
    assert found(HEAD + rule_yaml()) == []


def test_the_message_format_names_file_line_and_rule() -> None:
    [finding] = [
        f
        for f in lint(HEAD + rule_yaml(rid="cse-l3-panel", fields="[body.foo]"))
        if f.code == "unknown-field"
    ]
    assert finding.format("agreement.yaml") == (
        "agreement.yaml:30 rule cse-l3-panel: field body.foo is not in the canonical schema "
        "[unknown-field]"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("[body.foo]", "field body.foo is not in the canonical schema"),
        ("[body.level]", "field body.level is not in the schema of missing.reported events"),
        ("[subject.home_address]", "field subject.home_address is a group of fields"),
        ("[body.risk_grade.*]", "field body.risk_grade is a single field"),
    ],
)
def test_fields_must_be_in_the_schema_of_the_rules_events(fields: str, message: str) -> None:
    findings = [f for f in lint(HEAD + rule_yaml(fields=fields)) if f.code == "unknown-field"]
    assert len(findings) == 1
    assert findings[0].message.startswith(message)
    assert (findings[0].line, findings[0].where) == (FIELDS, "rule r1")


def test_a_recipient_that_is_not_a_party() -> None:
    assert found(HEAD + rule_yaml(recipient="party: ghost-agency")) == [
        ("error", "unknown-party", RECIPIENT, "rule r1")
    ]


def test_a_source_condition_naming_a_stranger() -> None:
    when = "event_types: [missing.reported], from_parties: [ghost-agency]"
    assert found(HEAD + rule_yaml(when=when)) == [("error", "unknown-party", WHEN, "rule r1")]


@pytest.mark.parametrize(
    "when",
    [
        "event_types: [case.status], risk_grades: [high]",
        "event_types: [missing.found], cse_levels: [3]",
        "event_types: [cse.screening], safeguarding_flags: [cse_concern]",
        "event_types: []",
        "event_types: [missing.reported], linked_to: {boroughs: [E06000039], via: [found_in]}",
        "event_types: [missing.reported], linked_to: {boroughs: [], via: [home]}",
    ],
    ids=[
        "risk grade on case status",
        "CSE level on a return",
        "flags on a screening",
        "no event types",
        "found-in on a report",
        "no boroughs",
    ],
)
def test_rules_that_can_never_match(when: str) -> None:
    findings = found(HEAD + rule_yaml(when=when, fields="[body.type]"))
    assert ("error", "never-matches", WHEN, "rule r1") in findings


def test_a_selector_for_a_borough_role_the_events_never_have() -> None:
    recipient = "select: {kinds: [mash], borough_of: [area]}"
    assert found(HEAD + rule_yaml(recipient=recipient)) == [
        ("error", "never-matches", RECIPIENT, "rule r1")
    ]


def test_a_selector_for_a_kind_no_party_has_with_a_borough() -> None:
    recipient = "select: {kinds: [police], borough_of: [home]}"
    assert found(HEAD + rule_yaml(recipient=recipient)) == [
        ("error", "never-matches", RECIPIENT, "rule r1")
    ]


@pytest.mark.parametrize(
    ("extra", "code", "line"),
    [
        ("    expires_on: 2026-11-20\n", "expired", EXTRA),
        (
            "    effective_from: 2026-06-01\n    expires_on: 2026-05-01\n",
            "never-in-force",
            EXTRA + 1,
        ),
        ("    expires_on: 2025-12-01\n", "never-in-force", EXTRA),
    ],
    ids=["expired today", "ends before it starts", "ends before the agreement starts"],
)
def test_rules_that_are_never_in_force(extra: str, code: str, line: int) -> None:
    assert found(HEAD + rule_yaml(extra=extra)) == [("error", code, line, "rule r1")]


def test_a_rule_that_starts_after_the_agreement_ends() -> None:
    text = HEAD.replace(
        "effective_from: 2026-01-01\n", "effective_from: 2026-01-01\nexpires_on: 2027-01-01\n"
    )
    findings = found(text + rule_yaml(extra="    effective_from: 2027-02-01\n"))
    assert findings == [("error", "never-in-force", EXTRA + 1, "rule r1")]


def test_a_rule_not_yet_in_force_is_a_warning() -> None:
    findings = found(HEAD + rule_yaml(extra="    effective_from: 2027-02-01\n"))
    assert findings == [("warning", "not-yet-in-force", EXTRA, "rule r1")]


def test_an_expired_agreement() -> None:
    text = HEAD.replace(
        "effective_from: 2026-01-01\n", "effective_from: 2026-01-01\nexpires_on: 2026-06-01\n"
    )
    assert ("error", "expired", 3, "agreement") in found(text + rule_yaml(fields="[body.type]"))


def test_a_named_recipient_that_is_not_a_relevant_authority_under_s115() -> None:
    text = HEAD + rule_yaml(basis="cda-1998-s115", recipient="party: thames-youth-trust")
    assert found(text) == [("error", "not-relevant-authority", RECIPIENT, "rule r1")]
    assert has_errors(lint(text))


def test_a_selector_that_can_reach_one_under_s115_is_a_warning() -> None:
    recipient = "select: {kinds: [voluntary_sector], borough_of: [missing_from]}"
    text = HEAD + rule_yaml(basis="cda-1998-s115", recipient=recipient)
    assert found(text) == [("warning", "not-relevant-authority", RECIPIENT, "rule r1")]
    assert not has_errors(lint(text))


def test_duplicate_ids_are_each_reported_where_they_repeat() -> None:
    party = "  - id: wam-mash\n    name: Again\n    kind: mash\n    relevant_authority: true\n"
    text = HEAD.replace("rules:\n", party + "rules:\n") + rule_yaml() + rule_yaml()
    findings = found(text)
    assert ("error", "duplicate-id", 21, "party wam-mash") in findings
    assert ("error", "duplicate-id", 35, "rule r1") in findings
    assert parse(text).agreement is None


def test_a_duplicate_yaml_key_is_an_error_not_a_silent_overwrite() -> None:
    text = HEAD + rule_yaml(extra="    purpose: Something else.\n")
    assert found(text) == [("error", "duplicate-key", EXTRA, "rule r1")]


def test_the_same_party_twice_in_one_rule() -> None:
    text = HEAD + rule_yaml() + "      - party: wam-mash\n        fields: [body.type]\n"
    assert ("error", "duplicate-recipient", RECIPIENT, "rule r1") in found(text)


def test_a_field_set_that_does_not_exist() -> None:
    text = HEAD + rule_yaml().replace("fields: [subject.nhs_number]", "field_sets: [nope]")
    assert found(text) == [("error", "unknown-field-set", FIELDS, "rule r1")]


def test_field_sets_are_checked_against_the_schema() -> None:
    text = HEAD.replace("rules:\n", "field_sets:\n  ids: [subject.nhs_number, body.foo]\nrules:\n")
    text += rule_yaml().replace("fields: [subject.nhs_number]", "field_sets: [ids]")
    assert found(text) == [("error", "unknown-field", 22, "field set ids")]


def test_a_field_set_with_nothing_for_the_rules_events() -> None:
    text = HEAD.replace("rules:\n", "field_sets:\n  cse: [body.level]\nrules:\n")
    text += rule_yaml().replace("fields: [subject.nhs_number]", "field_sets: [cse]")
    assert found(text) == [("error", "unknown-field", FIELDS + 2, "rule r1")]


def test_a_rule_for_one_source_that_only_sends_back_to_it() -> None:
    when = "event_types: [missing.reported], from_parties: [tvp-police]"
    assert found(HEAD + rule_yaml(when=when, recipient="party: tvp-police")) == [
        ("error", "never-shares", RECIPIENT, "rule r1")
    ]


def test_a_voluntary_body_marked_as_a_relevant_authority() -> None:
    text = HEAD.replace("    relevant_authority: false\n", "    relevant_authority: true\n")
    assert ("warning", "relevant-authority", 19, "party thames-youth-trust") in found(
        text + rule_yaml()
    )


def test_a_party_no_rule_shares_with() -> None:
    warnings = [
        (f.code, f.line, f.where) for f in lint(HEAD + rule_yaml()) if f.code == "unused-party"
    ]
    assert warnings == [
        ("unused-party", 12, "party tvp-police"),
        ("unused-party", 16, "party thames-youth-trust"),
    ]


def test_structural_errors_are_located() -> None:
    text = HEAD + rule_yaml(basis="gdpr-consent")
    [finding] = lint(text)
    assert (finding.code, finding.line, finding.where) == ("invalid", BASIS, "rule r1")
    assert finding.message.startswith("rules.0.lawful_basis: Input should be")


def test_a_yaml_syntax_error_is_located() -> None:
    [finding] = lint(HEAD + "  - id: [unclosed\n")
    # The flow list opens on line 22; the parser finds it unclosed at the end, line 23.
    assert (finding.code, finding.line) == ("yaml", 23)


def test_a_version_written_as_a_number_must_be_quoted() -> None:
    [finding] = lint(MINIMAL_AGREEMENT.replace('version: "1"', "version: 1.10"))
    assert "quotes" in finding.message
    assert finding.line == 1


def test_a_document_that_is_not_a_mapping() -> None:
    [finding] = lint("- just a list\n")
    assert finding.severity is Severity.ERROR
    assert finding.code == "invalid"


def test_load_refuses_an_invalid_file_with_its_findings(tmp_path: object) -> None:
    from pathlib import Path  # noqa: PLC0415

    from broker.policy import load_agreement  # noqa: PLC0415

    path = Path(str(tmp_path)) / "agreement.yaml"
    path.write_text(HEAD + rule_yaml() + rule_yaml(), encoding="utf-8")
    with pytest.raises(AgreementInvalid) as caught:
        load_agreement(path)
    assert "agreement.yaml:31 rule r1: duplicate rule id r1" in str(caught.value)
    assert caught.value.findings[0].code == "duplicate-id"


def test_pattern_errors_say_what_is_expected_not_the_regular_expression() -> None:
    text = HEAD + rule_yaml(fields="[Subject.NHS]", recipient="party: Wam_Mash")
    messages = {(f.line, f.message) for f in lint(text)}
    assert messages == {
        (
            RECIPIENT,
            "rules.0.share_with.0.party: not an id (lower-case letters, digits and "
            "hyphens, e.g. tvp-police)",
        ),
        (
            FIELDS,
            "rules.0.share_with.0.fields.0: not a field path (dotted lower-case names, "
            "e.g. subject.nhs_number or body.*)",
        ),
    }


def test_an_invalid_only_recipient_is_reported_once() -> None:
    text = HEAD + rule_yaml(
        recipient="party: wam-mash\n        select: {kinds: [mash], borough_of: [home]}"
    ).replace("        fields: [subject.nhs_number]\n", "")
    [finding] = lint(text)
    assert finding.message == (
        "rules.0.share_with.0: a recipient needs exactly one of `party` or `select`"
    )
