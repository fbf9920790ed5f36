"""``crossborder check``: will a neighbour's broker be able to use what our rules send it?

A receiving broker validates each disclosure into a canonical event (``canonical``) and
refuses one that lacks a field the schema requires. This check finds, before anything is
sent, the rules whose field lists would make that happen: for each rule that may share with
a neighbouring broker and each event type it covers, the required body fields (and the
required fields of any group it shares part of) and something that identifies the child.
Metadata is not checked: the receiver completes it from the envelope.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from broker.policy import (
    ALWAYS_INCLUDED,
    Agreement,
    Finding,
    LineMap,
    PartyKind,
    Recipient,
    Severity,
    is_allowed,
)
from schemas import Event, EventType
from schemas.person import Child

__all__ = ["INCOMPLETE_CODE", "check_neighbour_rules", "missing_for_receiver"]

#: The finding code of a rule whose disclosures a neighbour would refuse as incomplete.
INCOMPLETE_CODE = "xborder-incomplete"

#: Fields that identify the child well enough for the schema: any one of the first three, or
#: the two of the last together.
_IDENTIFIERS = ("subject.nhs_number", "subject.paris_id", "subject.police_person_ref")
_NAME_AND_BIRTH = ("subject.family_name", "subject.date_of_birth")
_INTELLIGENCE_CONTENT = ("locations", "vehicles", "associates", "online_contacts")


def check_neighbour_rules(agreement: Agreement, lines: LineMap | None = None) -> list[Finding]:
    """Findings for every rule that would send a neighbouring broker an incomplete event.

    Args:
        agreement: the sending broker's agreement.
        lines: the YAML line map (from ``read_agreement_file``), to locate the findings.
    """
    lines = lines or LineMap()
    findings: list[Finding] = []
    for r, rule in enumerate(agreement.rules):
        types_ = rule.when.event_types or tuple(EventType)
        for s, recipient in enumerate(rule.share_with):
            if not _may_reach_neighbour(agreement, recipient):
                continue
            allowed = _allowed(agreement, recipient)
            for event_type in types_:
                missing = missing_for_receiver(event_type, allowed)
                if missing:
                    findings.append(
                        Finding(
                            Severity.ERROR,
                            INCOMPLETE_CODE,
                            f"a {event_type.value} event shared with {recipient.label} lacks "
                            f"{', '.join(missing)}; the neighbour's broker would refuse it",
                            lines.line_for(("rules", r, "share_with", s)),
                            f"rule {rule.id}",
                        )
                    )
    return findings


def missing_for_receiver(event_type: EventType, allowed: Iterable[str]) -> list[str]:
    """What a receiving broker would lack to validate an event of this type.

    Args:
        event_type: the event's type.
        allowed: the field paths the rule shares (with :data:`ALWAYS_INCLUDED`).

    Returns:
        Field paths (or a short description of an alternative), sorted; empty when the
        receiver can make a canonical event of whatever the source sent.
    """
    paths = frozenset(allowed)
    missing = _missing(_BODY_MODELS[event_type], "body", paths)
    if event_type is EventType.INTELLIGENCE:
        if not any(_touches(f"body.{name}", paths) for name in _INTELLIGENCE_CONTENT):
            missing.append("one of body.locations, vehicles, associates or online_contacts")
    else:
        identified = any(is_allowed(p, paths) for p in _IDENTIFIERS) or all(
            is_allowed(p, paths) for p in _NAME_AND_BIRTH
        )
        if not identified:
            missing.append(
                "subject identity (nhs_number, paris_id, police_person_ref, or "
                "family_name with date_of_birth)"
            )
    if _touches("subject", paths):
        missing += _missing(Child, "subject", paths)
    return sorted(set(missing))


def _may_reach_neighbour(agreement: Agreement, recipient: Recipient) -> bool:
    if recipient.party is not None:
        party = agreement.party(recipient.party)
        return party is not None and party.kind is PartyKind.NEIGHBOURING_BROKER
    assert recipient.select is not None  # noqa: S101 - a recipient is a party or a selector
    return PartyKind.NEIGHBOURING_BROKER in recipient.select.kinds


def _allowed(agreement: Agreement, recipient: Recipient) -> frozenset[str]:
    paths = set(recipient.fields) | ALWAYS_INCLUDED
    for name in recipient.field_sets:
        paths.update(agreement.field_sets.get(name, ()))
    return frozenset(paths)


def _touches(path: str, allowed: frozenset[str]) -> bool:
    """Whether anything at or under ``path`` is allowed."""
    return is_allowed(path, allowed) or any(p.startswith(f"{path}.") for p in allowed)


def _missing(model: type[BaseModel], prefix: str, allowed: frozenset[str]) -> list[str]:
    """Required fields of ``model`` not allowed; groups are checked where any part is shared."""
    found: list[str] = []
    for name, info in model.model_fields.items():
        if name == "type":
            continue  # the body's type is always included
        path = f"{prefix}.{name}"
        nested = list(_models_in(info.annotation))
        if info.is_required():
            if not nested:
                if not is_allowed(path, allowed):
                    found.append(path)
            elif not _touches(path, allowed):
                found.append(path)
            else:
                for sub in nested:
                    found += _missing(sub, path, allowed)
        elif nested and _touches(path, allowed):
            for sub in nested:
                found += _missing(sub, path, allowed)
    return found


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models a field's annotation holds (through Optional, unions, tuples)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _models_in(get_args(annotation)[0])
    elif origin in (Union, types.UnionType, tuple, list):
        for arg in get_args(annotation):
            yield from _models_in(arg)


_BODY_MODELS: dict[EventType, type[BaseModel]] = {
    EventType(model.model_fields["type"].default): model
    for model in _models_in(Event.model_fields["body"].annotation)
}
