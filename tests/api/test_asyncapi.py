"""The AsyncAPI document: valid against the official AsyncAPI 3.0 JSON Schema, refs resolve,
it matches the topology, and the committed copy has not drifted."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from broker.api import asyncapi_document, render_asyncapi
from broker.api.routes.asyncapi import package_version
from broker.policy import load_agreement
from broker.service import topology_for
from broker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NODE_PREFIX = ROOT / "var" / "node"
SPEC = NODE_PREFIX / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0.json"
COMMITTED = ROOT / "docs" / "asyncapi.json"


@pytest.fixture(scope="session")
def asyncapi_schema() -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema from the npm package @asyncapi/specs."""
    if not SPEC.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot fetch @asyncapi/specs to validate against")
        subprocess.run(  # noqa: S603 - fixed argv, a registry package by name
            [
                npm,
                "install",
                "--prefix",
                str(NODE_PREFIX),
                "--no-audit",
                "--no-fund",
                "@asyncapi/specs@6",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    schema: dict[str, Any] = json.loads(SPEC.read_text(encoding="utf-8"))
    return schema


def _shipped() -> dict[str, Any]:
    settings = Settings(_env_file=None, agreement_path=ROOT / "policy" / "agreement.yaml")
    topology = topology_for(settings, load_agreement(settings.agreement_path))
    return asyncapi_document(topology, version=package_version())


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def test_valid_against_the_official_schema(asyncapi_schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(asyncapi_schema)
    errors = sorted(validator.iter_errors(_shipped()), key=lambda e: list(e.path))
    assert errors == [], [f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]]


def test_the_official_schema_catches_a_broken_document(asyncapi_schema: dict[str, Any]) -> None:
    broken = _shipped()
    broken["operations"]["send-wam-mash"]["action"] = "publish"  # AsyncAPI 2 wording
    assert not jsonschema.Draft7Validator(asyncapi_schema).is_valid(broken)


def test_every_reference_resolves() -> None:
    document = _shipped()
    refs = _refs(document)
    assert len(refs) > 50
    for ref in refs:
        _resolve(document, ref)


def test_channels_follow_the_topology() -> None:
    document = _shipped()
    settings = Settings(_env_file=None, agreement_path=ROOT / "policy" / "agreement.yaml")
    topology = topology_for(settings, load_agreement(settings.agreement_path))
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert set(topology.recipient_queues.values()) <= addresses
    assert {"police", "hl7v2", "fhir", "paris-csv", "paris-xml"} <= addresses
    claims = _resolve(
        document, document["components"]["messages"]["disclosure"]["x-decrypted-claims"]["$ref"]
    )
    assert "event" in claims["properties"]


def test_the_committed_copy_has_not_drifted() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_asyncapi(_shipped()), (
        "docs/asyncapi.json is out of date: mash-broker api asyncapi -o docs/asyncapi.json"
    )


async def test_served_at_asyncapi_json(client: httpx.AsyncClient) -> None:
    answer = await client.get("/asyncapi.json")
    assert answer.status_code == 200
    assert answer.json()["asyncapi"] == "3.0.0"
    assert answer.json()["channels"].keys() == _shipped()["channels"].keys()
