"""The police adapter: missing-person and exploitation records (JSON) to canonical events."""

from adapters.police.adapter import PoliceAdapter, json_path, read_record
from adapters.police.format import FORMAT_VERSION, RECORD_ADAPTER, PoliceRecord, record_json_schema
from adapters.police.mapping import record_to_events
from adapters.police.rules import record_problems

__all__ = [
    "FORMAT_VERSION",
    "RECORD_ADAPTER",
    "PoliceAdapter",
    "PoliceRecord",
    "json_path",
    "read_record",
    "record_json_schema",
    "record_problems",
    "record_to_events",
]
