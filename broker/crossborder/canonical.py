"""A neighbour's disclosure made into a canonical event of this broker's own.

What arrives is the neighbour's event after its agreement minimised it: identity and the
facts of the episode, but usually not the metadata the schema requires. The metadata is
completed from the verified envelope, so each completed value is a fact about the disclosure:

=====================  ========================================================================
``metadata.source``    ``agency`` = the sending broker (the party this broker received it from;
                       its rules see it as the source), ``system`` = ``mash-broker``,
                       ``reference`` = ``<originating agency>:<jti>`` (what to quote back)
``lawful_basis``       the basis the sending broker disclosed it under
``occurred_at``        as shared; otherwise the disclosure's issue time (``iat``)
``recorded_at``        as shared; otherwise the disclosure's issue time (``iat``)
=====================  ========================================================================

Everything else is taken as it came and validated into :class:`schemas.Event`. Nothing is
invented: when the sender's agreement withheld a field the schema requires (a body field,
or anything that identifies the child), the disclosure is refused as incomplete and the
sending partnership is told which fields its rule must add (``crossborder check``). And a
field the schema would default (``philomena_protocol: false``, ``declined: false``) is not
written out when it did not arrive: the event is a :class:`ReceivedEvent`, which writes only
the fields it was given, so this broker never passes on "no" where the neighbour said nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from broker.exceptions import PayloadInvalid
from schemas import DisclosureClaims, Event, EventType

__all__ = ["SOURCE_SYSTEM", "IncompleteEvent", "ReceivedEvent", "canonical_event"]

#: ``metadata.source.system`` of an event received from a neighbouring broker.
SOURCE_SYSTEM = "mash-broker"
_MAX_SHOWN = 300
_BODY_TAGS = frozenset(t.value for t in EventType)


class IncompleteEvent(PayloadInvalid):
    """A verified disclosure whose event lacks what the canonical schema requires."""

    code = "incomplete_event"

    def __init__(self, message: str, locations: tuple[str, ...]) -> None:
        super().__init__(message)
        #: The field paths that are missing or invalid; never their values.
        self.locations = locations


class ReceivedEvent(Event):
    """A canonical event made from a neighbour's disclosure.

    Validated like any event, but written out (``model_dump``, which the policy engine uses
    to minimise it) with only the fields that arrived or were completed: the defaults the
    schema would add are facts nobody stated.
    """

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """As :meth:`pydantic.BaseModel.model_dump`, leaving out fields that were not given."""
        kwargs.setdefault("exclude_unset", True)
        return super().model_dump(**kwargs)


def canonical_event(claims: DisclosureClaims) -> ReceivedEvent:
    """The canonical event a verified disclosure carries, its metadata completed.

    Args:
        claims: the opened and verified claims of a disclosure from a neighbouring broker.

    Returns:
        A valid :class:`schemas.Event` (a :class:`ReceivedEvent`) with the disclosed
        event's id.

    Raises:
        IncompleteEvent: a required field was withheld, or a value is not valid; the
            message names field paths only.
    """
    document: dict[str, Any] = dict(claims.event)
    shared = document.get("metadata")
    metadata: dict[str, Any] = dict(shared) if isinstance(shared, dict) else {}
    issued = datetime.fromtimestamp(claims.iat, UTC).isoformat()
    metadata["source"] = {
        "agency": claims.iss,
        "system": SOURCE_SYSTEM,
        "reference": f"{claims.provenance.source_agency}:{claims.jti}",
    }
    metadata["lawful_basis"] = claims.lawful_basis.value
    metadata.setdefault("occurred_at", issued)
    metadata.setdefault("recorded_at", issued)
    document["metadata"] = metadata
    try:
        return ReceivedEvent.model_validate(document)
    except ValidationError as exc:
        locations = tuple(sorted({_location(error) for error in _errors(exc)}))
        shown = ", ".join(locations)
        if len(shown) > _MAX_SHOWN:
            shown = shown[: _MAX_SHOWN - 3] + "..."
        raise IncompleteEvent(
            f"disclosure jti={claims.jti} from {claims.iss}: the event lacks or has invalid "
            f"{shown}",
            locations,
        ) from None


def _errors(exc: ValidationError) -> list[Any]:
    # Locations and kinds only: the input values may be personal data.
    return list(exc.errors(include_url=False, include_input=False, include_context=False))


def _location(error: Any) -> str:
    """A field path from a pydantic error: list indexes and the body's type tag dropped.

    An error of the whole event (no location) comes from the schema's own cross-field
    checks, whose messages name fields, not values; it is kept to say which check failed.
    """
    parts = [str(part) for part in error["loc"] if not isinstance(part, int)]
    if len(parts) > 1 and parts[0] == "body" and parts[1] in _BODY_TAGS:
        del parts[1]
    return ".".join(parts) or f"(event: {error['msg'].removeprefix('Value error, ')})"
