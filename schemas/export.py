"""JSON Schema export: one file per canonical model, for partners to validate against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.disclosure import DisclosureClaims
from schemas.events import (
    CaseStatus,
    CseScreening,
    Event,
    EventMetadata,
    Intelligence,
    MissingFound,
    MissingReported,
    MissingUpdated,
    ReturnHomeInterview,
    UnscheduledCareAttendance,
)
from schemas.person import Child

__all__ = ["EXPORTED_MODELS", "json_schemas", "write_json_schemas"]

#: File stem → model. ``event`` is the whole envelope; the others are its parts.
EXPORTED_MODELS: dict[str, type[BaseModel]] = {
    "event": Event,
    "metadata": EventMetadata,
    "child": Child,
    "missing-reported": MissingReported,
    "missing-updated": MissingUpdated,
    "missing-found": MissingFound,
    "return-home-interview": ReturnHomeInterview,
    "cse-screening": CseScreening,
    "unscheduled-care-attendance": UnscheduledCareAttendance,
    "case-status": CaseStatus,
    "intelligence": Intelligence,
    "disclosure-claims": DisclosureClaims,
}

_ID_BASE = "https://schemas.mash-broker.example/v1/"


def json_schemas() -> dict[str, dict[str, Any]]:
    """Each exported model's JSON Schema (draft 2020-12), keyed by file name."""
    out: dict[str, dict[str, Any]] = {}
    for stem, model in EXPORTED_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{_ID_BASE}{stem}.schema.json",
            **schema,
        }
        out[f"{stem}.schema.json"] = schema
    return out


def write_json_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory`` (created if needed); return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
