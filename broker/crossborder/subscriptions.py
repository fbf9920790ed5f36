"""Subscriptions: what the agreement gives a party, and by which links to its own area.

A borough's panel (or a neighbouring broker) "subscribes" to intelligence about its own
area through the agreement, not through a request at run time: a rule whose recipient is
``select: {kinds: [borough_panel], borough_of: [...]}`` reaches the panel of whichever
borough an event links to by those roles (``lives_in``, ``missing_from``, ``found_in``,
``area``; see ``BoroughRole``). The partnership decides which roles and which fields, in the
rule. This module reads an agreement back as the list of such subscriptions for one party,
for ``crossborder subscriptions`` and for the partnerships' review of what flows where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.exceptions import ConfigurationError
from broker.policy import (
    ALWAYS_INCLUDED,
    Agreement,
    BoroughRole,
    Party,
    Recipient,
    Rule,
)
from schemas import EventType, LawfulBasis

__all__ = ["OWN_AREA_ROLES", "Subscription", "subscriptions_of"]

#: The roles that make an event about a borough's own area: children living in it, missing
#: from it, found in it, and intelligence about locations in it.
OWN_AREA_ROLES = (
    BoroughRole.LIVES_IN,
    BoroughRole.MISSING_FROM,
    BoroughRole.FOUND_IN,
    BoroughRole.AREA,
)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One rule's recipient entry that reaches a party, read as what the party receives."""

    party: str
    rule_id: str
    lawful_basis: LawfulBasis
    #: The event types; None for every type.
    event_types: tuple[EventType, ...] | None
    #: The roles by which an event must link to ``boroughs``; None when the rule names the
    #: party outright and has no borough condition.
    via: tuple[BoroughRole, ...] | None
    #: The boroughs the event must link to by ``via`` (the party's own, for a selector).
    boroughs: tuple[str, ...]
    #: The further conditions of the rule (risk grades, CSE levels, flags, sources), as text.
    conditions: tuple[str, ...]
    #: The fields the party receives (field sets expanded, the always-included ones too).
    fields: tuple[str, ...]

    @property
    def own_area(self) -> bool:
        """True when every event it covers is linked to the party's borough by some role."""
        return self.via is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        types = None if self.event_types is None else [t.value for t in self.event_types]
        return {
            "party": self.party,
            "rule_id": self.rule_id,
            "lawful_basis": self.lawful_basis.value,
            "event_types": types,
            "via": None if self.via is None else [r.value for r in self.via],
            "boroughs": list(self.boroughs),
            "conditions": list(self.conditions),
            "fields": list(self.fields),
        }

    def describe(self) -> str:
        """One paragraph for people: which events, linked how, and which fields."""
        kinds = ", ".join(t.value for t in self.event_types) if self.event_types else "any"
        text = f"rule {self.rule_id} ({self.lawful_basis.value}): {kinds} events"
        if self.via is not None:
            text += (
                f" whose {'/'.join(r.value for r in self.via)} borough is "
                f"{' or '.join(self.boroughs)}"
            )
        if self.conditions:
            text += f", when {'; '.join(self.conditions)}"
        return f"{text}\n    fields: {', '.join(self.fields)}"


def subscriptions_of(agreement: Agreement, party_id: str) -> tuple[Subscription, ...]:
    """Every rule entry of the agreement that can share with ``party_id``.

    Args:
        agreement: the agreement to read.
        party_id: a party of it, e.g. ``slough-panel`` or ``slough-broker``.

    Raises:
        ConfigurationError: the party is not in the agreement.
    """
    party = agreement.party(party_id)
    if party is None:
        raise ConfigurationError(
            f"{party_id} is not a party to agreement version {agreement.version}"
        )
    found: list[Subscription] = []
    for rule in agreement.rules:
        for recipient in rule.share_with:
            subscription = _entry(agreement, rule, recipient, party)
            if subscription is not None:
                found.append(subscription)
    return tuple(found)


def _entry(
    agreement: Agreement, rule: Rule, recipient: Recipient, party: Party
) -> Subscription | None:
    linked = rule.when.linked_to
    if recipient.party == party.id:
        via = None if linked is None else linked.via
        boroughs = () if linked is None else linked.boroughs
    elif recipient.select is not None and party.kind in recipient.select.kinds:
        if party.borough is None:
            return None
        if linked is not None and party.borough not in linked.boroughs:
            # The rule only applies to events linked to other boroughs.
            return None
        via, boroughs = recipient.select.borough_of, (party.borough,)
    else:
        return None
    fields = set(recipient.fields) | ALWAYS_INCLUDED
    for name in recipient.field_sets:
        fields.update(agreement.field_sets.get(name, ()))
    return Subscription(
        party=party.id,
        rule_id=rule.id,
        lawful_basis=rule.lawful_basis,
        event_types=rule.when.event_types,
        via=tuple(via) if via is not None else None,
        boroughs=tuple(boroughs),
        conditions=_conditions(rule),
        fields=tuple(sorted(fields)),
    )


def _conditions(rule: Rule) -> tuple[str, ...]:
    when = rule.when
    out: list[str] = []
    if when.risk_grades is not None:
        out.append(f"risk grade {'/'.join(g.value for g in when.risk_grades)}")
    if when.cse_levels is not None:
        out.append(f"CSE level {'/'.join(str(int(level)) for level in when.cse_levels)}")
    if when.safeguarding_flags is not None:
        out.append(f"flagged {'/'.join(f.value for f in when.safeguarding_flags)}")
    if when.from_parties is not None:
        out.append(f"sent by {'/'.join(when.from_parties)}")
    return tuple(out)
