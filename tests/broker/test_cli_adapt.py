"""``mash-broker adapt``: canonical JSON lines out, located one-line problems and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli import app
from schemas import Event

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

CASES = [
    ("police", SAMPLES / "police" / "episode-04-found.json"),
    ("hl7v2", SAMPLES / "health" / "hl7v2" / "attendance-01-V010001-a04.hl7"),
    ("fhir", SAMPLES / "health" / "fhir" / "attendance-01-V010001.json"),
    ("paris-csv", SAMPLES / "paris" / "cse-tracker.csv"),
    ("paris-xml", SAMPLES / "paris" / "cse-tracker.xml"),
]


@pytest.mark.parametrize(("adapter", "path"), CASES)
def test_prints_canonical_events_as_json_lines(adapter: str, path: Path) -> None:
    result = CliRunner().invoke(app, ["adapt", adapter, str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines
    for line in lines:
        Event.model_validate_json(line)


def test_bad_police_record_names_each_field_and_exits_2(tmp_path: Path) -> None:
    record = json.loads((SAMPLES / "police" / "episode-04-found.json").read_text())
    record["missing_person"]["nhs_number"] = "9434765918"  # wrong check digit
    record["missing_person"]["date_of_birth"] = "2099-01-01"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(record))
    result = CliRunner().invoke(app, ["adapt", "police", str(bad)])
    assert result.exit_code == 2
    problems = result.stderr.strip().splitlines()
    assert any(p.startswith("missing_person.nhs_number: ") for p in problems), problems
    assert any(p.startswith("missing_person.date_of_birth: ") for p in problems), problems
    assert "9434765918" not in result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_a_bad_csv_row_is_reported_and_the_good_rows_still_print(tmp_path: Path) -> None:
    lines = (SAMPLES / "paris" / "cse-tracker.csv").read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(",")
    column = header.index("nhs_number")
    cells = lines[2].rstrip("\r\n").split(",")
    cells[column] = "9434765918"
    lines[2] = ",".join(cells) + "\n"
    bad = tmp_path / "tracker.csv"
    bad.write_text("".join(lines))
    result = CliRunner().invoke(app, ["adapt", "paris-csv", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("row 2, column ")
    ]
    assert "row 2, column nhs_number: " in result.stderr
    assert len(result.stdout.splitlines()) == len(lines) - 2


def test_unreadable_hl7_is_located_by_segment() -> None:
    result = CliRunner().invoke(app, ["adapt", "hl7v2", "-"], input="MSH|^~\\&|X\rPID|1\r")
    assert result.exit_code == 2
    assert result.stderr.strip()
    assert all(": " in line for line in result.stderr.strip().splitlines())


def test_unknown_adapter_and_missing_file() -> None:
    unknown = CliRunner().invoke(app, ["adapt", "carrier-pigeon", "x"])
    assert unknown.exit_code == 2
    assert "unknown adapter" in unknown.output
    missing = CliRunner().invoke(app, ["adapt", "police", "/nonexistent/file.json"])
    assert missing.exit_code == 2
    assert "cannot read" in missing.output


def test_the_installed_command_never_prints_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.xml"
    bad.write_bytes(b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")
    done = subprocess.run(  # noqa: S603 - our own command line, fixed arguments
        [sys.executable, "-m", "broker", "adapt", "paris-xml", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip()
