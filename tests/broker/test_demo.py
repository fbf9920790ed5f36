"""The demo command: keys made once, an event sealed for the MASH and opened again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli import app
from broker.keys import KeyRegistry

ROOT = Path(__file__).resolve().parents[2]


def test_demo_seals_and_opens_for_the_mash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASH_AGREEMENT_PATH", str(ROOT / "policy" / "agreement.yaml"))
    keys = tmp_path / "keys"
    result = CliRunner().invoke(app, ["demo", "--envelope-only", "--keys-dir", str(keys)])
    assert result.exit_code == 0, result.output
    assert "sealed for wam-mash" in result.output
    assert "opened by wam-mash: issuer wam-broker, rule missing-to-mash" in result.output
    assert "refused  thames-youth-trust       not_relevant_authority" in result.output
    opened = json.loads(result.output[result.output.index("{") :])
    assert opened["body"]["type"] == "missing.reported"
    assert opened["metadata"]["event_id"] == "5afe0000-0000-0000-0000-000000000001"
    registry = KeyRegistry.load(keys)
    assert {"wam-broker", "wam-mash", "tvp-police"} <= set(registry.parties)

    again = CliRunner().invoke(app, ["demo", "--envelope-only", "--keys-dir", str(keys)])
    assert again.exit_code == 0, again.output
    assert KeyRegistry.load(keys).records == registry.records  # keys are made only once
