"""JSON Schema export: the committed files match the models, and examples validate."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from broker.cli import app
from schemas import Event, EventType, json_schemas

COMMITTED = Path(__file__).resolve().parents[2] / "schemas" / "json"


def test_committed_schemas_match_the_models() -> None:
    expected = json_schemas()
    committed = {p.name for p in COMMITTED.glob("*.schema.json")}
    assert committed == set(expected), "run: mash-broker schemas export schemas/json"
    for name, schema in expected.items():
        on_disk = json.loads((COMMITTED / name).read_text())
        assert on_disk == schema, f"{name} drifted; run: mash-broker schemas export schemas/json"


def test_export_command_writes_every_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} == set(json_schemas())


def test_example_command_prints_a_valid_event_for_each_type() -> None:
    for event_type in EventType:
        result = CliRunner().invoke(app, ["schemas", "example", event_type.value])
        assert result.exit_code == 0, result.output
        assert Event.model_validate_json(result.stdout).event_type is event_type


def test_example_command_lists_types_in_help_and_refuses_unknown() -> None:
    help_text = CliRunner().invoke(app, ["schemas", "example", "--help"]).output
    assert "missing.reported" in help_text
    result = CliRunner().invoke(app, ["schemas", "example", "missing.teleported"])
    assert result.exit_code == 2
    assert "unknown event type" in result.output


def test_event_schema_refuses_extra_properties() -> None:
    schema = json_schemas()["event.schema.json"]
    assert schema["additionalProperties"] is False
    assert schema["$schema"].endswith("2020-12/schema")
