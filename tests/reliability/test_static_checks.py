"""Static checks in the test run (item 14): bandit, and no sample personal data in any log.

The log check proper runs at the end of every session (tests/reliability/logcapture.py,
loaded from tests/conftest.py); the tests here show that it can fail, and apply it to a
pipeline run over every sample, accepted and rejected, at debug level.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.logging import configure_logging
from broker.pipeline import Ingestor
from broker.samples.scenario import make_scenario
from broker.service import Service
from tests.reliability import logcapture
from tests.reliability.helpers import native_items

ROOT = Path(__file__).resolve().parents[2]
ACCEPTED = Path(__file__).with_name("bandit-accepted.yaml")
_NOQA = re.compile(r"#\s*noqa:\s*(?P<codes>[A-Z0-9, ]+?)\s+-\s+\S")


def _bandit() -> list[dict[str, Any]]:
    pytest.importorskip("bandit")
    done = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", "broker", "adapters", "schemas", "-f", "json", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert not report["errors"], report["errors"]
    results: list[dict[str, Any]] = report["results"]
    return results


def _explained_in_place(finding: dict[str, Any]) -> bool:
    """The flagged line (or the statement's first line) suppresses the same ruff S check
    with a reason after ' - '."""
    lines = (ROOT / finding["filename"]).read_text().splitlines()
    code = "S" + finding["test_id"][1:]
    numbers = {finding["line_number"], *finding.get("line_range", [])}
    for number in numbers:
        match = _NOQA.search(lines[number - 1]) if 0 < number <= len(lines) else None
        if match and code in {c.strip() for c in match.group("codes").split(",")}:
            return True
    return False


def _accepted(finding: dict[str, Any], accepted: list[dict[str, str]]) -> bool:
    return any(
        entry["test"] == finding["test_id"]
        and fnmatch.fnmatch(finding["filename"], entry["path"])
        and entry["reason"].strip()
        for entry in accepted
    )


def test_bandit_finds_nothing_unexplained() -> None:
    accepted = yaml.safe_load(ACCEPTED.read_text())["accepted"]
    findings = _bandit()
    unexplained = [
        f"{f['test_id']} {f['issue_severity']} {f['filename']}:{f['line_number']} {f['issue_text']}"
        for f in findings
        if not _accepted(f, accepted) and not _explained_in_place(f)
    ]
    assert not unexplained, "\n".join(unexplained)
    # Every accepted entry still matches something: stale excuses are removed.
    stale = [e for e in accepted if not any(_accepted(f, [e]) for f in findings)]
    assert not stale, stale


# --- personal data in logs ----------------------------------------------------------------------


def test_the_log_check_catches_each_kind_of_personal_value() -> None:
    child = make_scenario(1).children[0]
    leaked = {
        "name": f"event=x subject='{child.given_name} {child.family_name}'",
        "nhs": f"nhs_number={child.nhs_number}",
        "dob": f"dob={child.date_of_birth.isoformat()}",
        "hl7-dob": f"PID-7={child.date_of_birth.strftime('%Y%m%d')}",
        "postcode": f"postcode='{child.postcode}'",
        "address": f"line='{child.address_line}'",
        "coloured": f"name=\x1b[35m{child.family_name}\x1b[0m",
    }
    found = logcapture.leaks((kind, line) for kind, line in leaked.items())
    assert {test for test, _, _ in found} == set(leaked)
    digits = child.date_of_birth.strftime("%Y%m%d")
    clean = [("ids", f"jti=ab{digits}cd message_id=native-{digits}0 alert_id=3 queue=mash")]
    assert logcapture.leaks(clean) == []


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_the_pipeline_logs_no_personal_data(service: Service) -> None:
    """Every sample, and a broken copy of each, through the pipeline at debug level."""
    configure_logging("debug", json=True)
    start = len(logcapture.LINES.lines)
    ingestor = Ingestor(service)
    for seed in (1, 2):
        for adapter, raw, sender in native_items(seed):
            ingestor.ingest(adapter, raw, sender)
            ingestor.ingest(adapter, raw[: len(raw) * 2 // 3], sender)  # rejected, logged
    lines = logcapture.LINES.lines[start:]
    assert len(lines) > 20, "the pipeline's log lines were not captured"
    assert logcapture.leaks(lines) == []
