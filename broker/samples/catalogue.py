"""Which adapter and which sending party each sample file belongs to."""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["adapter_for", "sender_for"]

_SENDERS = {
    "police": "tvp-police",
    "hl7v2": "fhft-hospital",
    "fhir": "fhft-hospital",
    "paris-csv": "wam-childrens-services",
    "paris-xml": "wam-childrens-services",
}


def adapter_for(relative: str) -> str:
    """The adapter for a sample path such as ``health/hl7v2/attendance-01-a04.hl7``.

    Raises:
        ValueError: the path is not one the sample generator writes.
    """
    path = PurePosixPath(relative)
    top = path.parts[0]
    if top == "police":
        return "police"
    if top == "health" and len(path.parts) > 2 and path.parts[1] in ("hl7v2", "fhir"):
        return path.parts[1]
    if top == "paris" and path.suffix in (".csv", ".xml"):
        return f"paris-{path.suffix[1:]}"
    raise ValueError(f"{relative}: not a sample path")


def sender_for(adapter: str) -> str:
    """The party that sends the scenario's messages in this adapter's format."""
    return _SENDERS[adapter]
