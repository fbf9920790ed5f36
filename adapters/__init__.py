"""Adapters: pure translations from partners' native messages to canonical events."""

from __future__ import annotations

import importlib

from adapters.base import Adapter, AdapterContext, AdapterError, InputTooLarge, Problem

__all__ = [
    "ADAPTER_NAMES",
    "Adapter",
    "AdapterContext",
    "AdapterError",
    "InputTooLarge",
    "Problem",
    "get_adapter",
]

#: Adapter name → "module:class". Names are used by the CLI, HTTP paths and ingest queues.
_REGISTRY = {
    "police": "adapters.police:PoliceAdapter",
    "hl7v2": "adapters.health.hl7v2:Hl7v2Adapter",
    "fhir": "adapters.health.fhir:FhirAdapter",
    "paris-csv": "adapters.paris.csv_export:ParisCsvAdapter",
    "paris-xml": "adapters.paris.xml_export:ParisXmlAdapter",
}

ADAPTER_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_adapter(name: str) -> Adapter:
    """The adapter registered under ``name``.

    Raises:
        KeyError: no adapter has that name.
    """
    module_name, class_name = _REGISTRY[name].split(":")
    adapter: Adapter = getattr(importlib.import_module(module_name), class_name)()
    return adapter
