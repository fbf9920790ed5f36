"""Small builders for policy tests: variants of example events and minimal agreements."""

from __future__ import annotations

from typing import Any

from schemas import Event, EventType, example_event


def variant(event_type: EventType | str, **changes: Any) -> Event:
    """The example event of ``event_type`` with fields replaced, validated again.

    Keys are dotted paths with ``__`` for the dots: ``body__risk_grade="low"``.
    A value of ``None`` sets the field to null.
    """
    data = example_event(event_type).model_dump(mode="json")
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value
    return Event.model_validate(data)


MINIMAL_AGREEMENT = """\
version: "1"
effective_from: 2026-01-01
partnership:
  name: Test partnership
  borough: E06000040
parties:
  - id: wam-mash
    name: The MASH
    kind: mash
    relevant_authority: true
    borough: E06000040
  - id: tvp-police
    name: The police
    kind: police
    relevant_authority: true
rules:
  - id: missing-to-mash
    description: Missing reports to the MASH.
    purpose: Testing.
    lawful_basis: ca-2004-s11
    retention: 1 year
    when:
      event_types: [missing.reported]
    share_with:
      - party: wam-mash
        fields: [subject.nhs_number]
"""
