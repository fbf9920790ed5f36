"""``mash-broker policy check`` and ``policy explain`` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli.policy_cmd import app
from schemas import example_event
from tests.broker.policy.conftest import AGREEMENT_PATH
from tests.broker.policy.helpers import MINIMAL_AGREEMENT

AT = "2026-11-20T22:00:00+00:00"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    path.write_text(example_event("missing.reported").model_dump_json(), encoding="utf-8")
    return path


def test_check_passes_the_shipped_agreement(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", str(AGREEMENT_PATH), "--today", "2026-11-20"])
    assert result.exit_code == 0, result.output
    assert "agreement.yaml:" in result.stdout  # the one s.115 selector warning
    assert "1 warning(s)" in result.stderr


def test_check_strict_fails_on_warnings(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", str(AGREEMENT_PATH), "--today", "2026-11-20", "--strict"])
    assert result.exit_code == 1


def test_check_fails_with_located_messages(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "agreement.yaml"
    path.write_text(
        MINIMAL_AGREEMENT.replace("[subject.nhs_number]", "[body.foo]"), encoding="utf-8"
    )
    result = runner.invoke(app, ["check", str(path), "--today", "2026-11-20"])
    assert result.exit_code == 1
    assert (
        "agreement.yaml:26 rule missing-to-mash: field body.foo is not in the canonical "
        "schema [unknown-field]"
    ) in result.stdout


def test_check_json(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "agreement.yaml"
    path.write_text(
        MINIMAL_AGREEMENT.replace("party: wam-mash", "party: ghost-agency"), encoding="utf-8"
    )
    result = runner.invoke(app, ["check", str(path), "--json", "--today", "2026-11-20"])
    assert result.exit_code == 1
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert "unknown-party" in codes


def test_check_a_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2


def test_explain_lists_recipients_fields_rules_bases_and_refusals(
    runner: CliRunner, event_file: Path
) -> None:
    result = runner.invoke(app, ["explain", str(AGREEMENT_PATH), str(event_file), "--at", AT])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Shared with 6 recipients:" in out
    hospital = out[out.index("  fhft-hospital (Frimley Health") : out.index("  bob-icb")]
    assert "high-risk-missing-to-health" in hospital
    assert "ca-2004-s11" in hospital
    assert "3 months" in hospital
    assert "subject.nhs_number" in hospital
    assert "body.circumstances" not in hospital
    refused = out[out.index("Refused (1):") :]
    assert "thames-youth-trust" in refused
    assert "not_relevant_authority" in refused


def test_explain_never_prints_field_values(runner: CliRunner, event_file: Path) -> None:
    subject = example_event("missing.reported").subject
    assert subject is not None
    assert subject.nhs_number is not None
    for extra in ([], ["--json"]):
        result = runner.invoke(
            app, ["explain", str(AGREEMENT_PATH), str(event_file), "--at", AT, *extra]
        )
        assert result.exit_code == 0
        assert subject.nhs_number not in result.output
        assert "Brackwater" not in result.output


def test_explain_json(runner: CliRunner, event_file: Path) -> None:
    result = runner.invoke(
        app, ["explain", str(AGREEMENT_PATH), str(event_file), "--at", AT, "--json"]
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    mash = next(d for d in data["disclosures"] if d["recipient"] == "wam-mash")
    assert mash["rule_ids"] == ["missing-to-mash"]
    assert mash["recipient_name"] == "Windsor and Maidenhead Multi-Agency Safeguarding Hub"
    assert "event" not in mash
    [refusal] = data["refusals"]
    assert refusal["reason"] == "not_relevant_authority"


def test_explain_after_the_agreement_expired(runner: CliRunner, event_file: Path) -> None:
    result = runner.invoke(
        app, ["explain", str(AGREEMENT_PATH), str(event_file), "--at", "2029-06-01T12:00:00+01:00"]
    )
    assert result.exit_code == 0
    assert "Shared with nobody." in result.stdout
    assert "agreement_not_in_force" in result.stdout


def test_explain_an_invalid_event_names_the_fault_not_the_value(
    runner: CliRunner, tmp_path: Path
) -> None:
    data = example_event("missing.reported").model_dump(mode="json")
    data["subject"]["nhs_number"] = "9990000019"  # wrong check digit
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = runner.invoke(app, ["explain", str(AGREEMENT_PATH), str(path), "--at", AT])
    assert result.exit_code == 2
    assert "subject.nhs_number" in result.stderr
    assert "9990000019" not in result.output


def test_explain_refuses_a_naive_time(runner: CliRunner, event_file: Path) -> None:
    result = runner.invoke(
        app, ["explain", str(AGREEMENT_PATH), str(event_file), "--at", "2026-11-20T22:00:00"]
    )
    assert result.exit_code == 2
    assert "UTC offset" in result.stderr


def test_explain_with_an_invalid_agreement(
    runner: CliRunner, tmp_path: Path, event_file: Path
) -> None:
    path = tmp_path / "agreement.yaml"
    path.write_text("version: [\n", encoding="utf-8")
    result = runner.invoke(app, ["explain", str(path), str(event_file), "--at", AT])
    assert result.exit_code == 2
    assert "is not a valid agreement" in result.stderr
