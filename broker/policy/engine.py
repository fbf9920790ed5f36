"""Evaluating the agreement for one event: who receives which fields, and every refusal."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from broker.exceptions import PolicyDenied
from broker.policy.facts import EventFacts, event_facts
from broker.policy.fields import ALWAYS_INCLUDED, AllowTree, compile_allow_list, leaf_paths
from broker.policy.fields import minimise_with as _minimise_with
from broker.policy.model import Agreement, Conditions, Recipient, Retention, Rule
from schemas.events import Event, EventType, LawfulBasis

__all__ = [
    "Decision",
    "Disclosure",
    "Policy",
    "Refusal",
    "RefusalReason",
    "compile_policy",
    "evaluate",
    "rule_matches",
]


class RefusalReason(StrEnum):
    """Why something was not shared. Stable codes for the audit log and metrics."""

    #: No agreement is loaded: nothing is shared (default deny).
    NO_AGREEMENT = "no_agreement"
    #: The agreement is not yet in force, or has expired.
    AGREEMENT_NOT_IN_FORCE = "agreement_not_in_force"
    #: No rule of the agreement applies to this event.
    NO_MATCHING_RULE = "no_matching_rule"
    #: A rule applies to the event but is not yet in force, or has expired.
    RULE_NOT_IN_FORCE = "rule_not_in_force"
    #: The rule names a party the agreement does not list.
    UNKNOWN_PARTY = "unknown_party"
    #: A s.115 Crime and Disorder Act 1998 rule, and the party is not a relevant authority.
    NOT_RELEVANT_AUTHORITY = "not_relevant_authority"
    #: The party sent the event; it is not sent back unless the rule says so.
    SOURCE_OF_EVENT = "source_of_event"
    #: A selector found no party for the event's boroughs.
    NO_RECIPIENT_FOUND = "no_recipient_found"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A decision not to share, with its reason. Ids and codes only, never personal data."""

    #: The party refused, or None when the refusal is not about one party.
    recipient: str | None
    #: The rule concerned, or None when no rule is (no agreement, none in force, none matched).
    rule_id: str | None
    reason: RefusalReason
    #: A human-readable explanation naming ids, codes and dates.
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for the audit log and ``policy explain --json``."""
        return {
            "recipient": self.recipient,
            "rule_id": self.rule_id,
            "reason": self.reason.value,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Disclosure:
    """What one recipient may receive of one event, and under which rules.

    When several rules share the same event with the same recipient, the recipient still
    gets one disclosure: the union of the rules' fields, every rule id and basis (in the
    agreement's order), and the shortest retention of them.
    """

    recipient: str
    rule_ids: tuple[str, ...]
    lawful_bases: tuple[LawfulBasis, ...]
    purposes: tuple[str, ...]
    retention: Retention
    #: The allow-list applied, as written in the rules plus :data:`ALWAYS_INCLUDED`, sorted.
    fields: tuple[str, ...]
    #: The minimised event: a JSON-able dict holding only allowed fields.
    event: dict[str, Any] = field(repr=False)

    @property
    def rule_id(self) -> str:
        """The first rule (in agreement order) that shares with this recipient."""
        return self.rule_ids[0]

    @property
    def lawful_basis(self) -> LawfulBasis:
        """The lawful basis of :attr:`rule_id`."""
        return self.lawful_bases[0]

    @property
    def purpose(self) -> str:
        """The purpose of :attr:`rule_id`."""
        return self.purposes[0]

    def shared_fields(self) -> tuple[str, ...]:
        """The paths of the fields actually present in :attr:`event`, sorted (for the audit)."""
        return tuple(sorted(leaf_paths(self.event)))

    def to_dict(self, *, with_event: bool = True) -> dict[str, Any]:
        """A JSON-able form; ``with_event=False`` names the fields without copying values."""
        out: dict[str, Any] = {
            "recipient": self.recipient,
            "rule_ids": list(self.rule_ids),
            "lawful_bases": [b.value for b in self.lawful_bases],
            "purposes": list(self.purposes),
            "retention": str(self.retention),
            "fields": list(self.fields),
            "shared_fields": list(self.shared_fields()),
        }
        if with_event:
            out["event"] = self.event
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating the agreement for one event: disclosures and refusals."""

    event_id: UUID
    event_type: EventType
    source: str
    #: The agreement version used, or None when there was no agreement.
    agreement_version: str | None
    evaluated_at: datetime
    disclosures: tuple[Disclosure, ...]
    refusals: tuple[Refusal, ...]

    @property
    def recipients(self) -> tuple[str, ...]:
        """The parties that receive the event, in the agreement's order."""
        return tuple(d.recipient for d in self.disclosures)

    def disclosure_for(self, party_id: str) -> Disclosure | None:
        """The disclosure to ``party_id``, or None if it receives nothing."""
        return next((d for d in self.disclosures if d.recipient == party_id), None)

    def refusals_for(self, party_id: str) -> tuple[Refusal, ...]:
        """The refusals that name ``party_id``."""
        return tuple(r for r in self.refusals if r.recipient == party_id)

    def require(self, party_id: str) -> Disclosure:
        """The disclosure to ``party_id``.

        Raises:
            PolicyDenied: the agreement does not share this event with the party.
        """
        found = self.disclosure_for(party_id)
        if found is None:
            reasons = sorted({r.reason.value for r in self.refusals_for(party_id)})
            why = ", ".join(reasons) if reasons else "no rule shares it"
            raise PolicyDenied(f"event {self.event_id} is not shared with {party_id}: {why}")
        return found

    def to_dict(self, *, with_events: bool = True) -> dict[str, Any]:
        """A JSON-able form of the whole decision."""
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type.value,
            "source": self.source,
            "agreement_version": self.agreement_version,
            "evaluated_at": self.evaluated_at.isoformat(),
            "disclosures": [d.to_dict(with_event=with_events) for d in self.disclosures],
            "refusals": [r.to_dict() for r in self.refusals],
        }


def rule_matches(conditions: Conditions, facts: EventFacts) -> bool:
    """Whether an event with these facts satisfies a rule's conditions (dates aside).

    Each condition is any-of and all given conditions must hold; a condition on a fact the
    event does not have (a risk grade on a case status) does not hold.
    """
    c = conditions
    linked_to = c.linked_to
    return (
        (c.event_types is None or facts.event_type in c.event_types)
        and (c.risk_grades is None or facts.risk_grade in c.risk_grades)
        and (c.cse_levels is None or facts.cse_level in c.cse_levels)
        and (c.safeguarding_flags is None or not facts.flags.isdisjoint(c.safeguarding_flags))
        and (c.from_parties is None or facts.source in c.from_parties)
        and (
            linked_to is None
            or not facts.boroughs_via(linked_to.via).isdisjoint(linked_to.boroughs)
        )
    )


_Refuse = Callable[[str | None, Rule, RefusalReason, str], None]


@dataclass(frozen=True, slots=True)
class _Target:
    """One recipient entry of a rule, with its field set expanded once."""

    recipient: Recipient
    fields: frozenset[str]


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    targets: tuple[_Target, ...]


@dataclass(slots=True)
class _Share:
    """A recipient's disclosure being assembled across the rules that match."""

    rules: list[Rule] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)


class Policy:
    """An agreement compiled for evaluation: field sets expanded, allow-lists precompiled.

    Build one per loaded agreement and reuse it for every event. It is safe to share
    between tasks and threads: its only mutable state is a cache of compiled allow-lists.
    """

    __slots__ = ("_parties", "_rules", "_trees", "agreement")

    def __init__(self, agreement: Agreement) -> None:
        """Compile ``agreement``.

        Args:
            agreement: a loaded agreement. Unknown field-set names contribute no fields
                (``policy check`` reports them).
        """
        self.agreement = agreement
        self._rules = tuple(
            _CompiledRule(rule, tuple(self._target(r) for r in rule.share_with))
            for rule in agreement.rules
        )
        self._parties = {p.id: p for p in agreement.parties}
        self._trees: dict[frozenset[str], tuple[AllowTree, tuple[str, ...]]] = {}
        for compiled in self._rules:
            for target in compiled.targets:
                self._tree(target.fields)

    def _target(self, recipient: Recipient) -> _Target:
        paths = set(recipient.fields)
        for name in recipient.field_sets:
            paths.update(self.agreement.field_sets.get(name, ()))
        return _Target(recipient, frozenset(paths | ALWAYS_INCLUDED))

    def _tree(self, paths: frozenset[str]) -> tuple[AllowTree, tuple[str, ...]]:
        """The compiled allow-list for ``paths``, and the paths sorted (for the disclosure)."""
        compiled = self._trees.get(paths)
        if compiled is None:
            # Unions of several rules' fields are compiled on first use and kept; there are
            # at most as many as combinations of rules that match together.
            compiled = self._trees[paths] = (compile_allow_list(paths), tuple(sorted(paths)))
        return compiled

    def evaluate(
        self, event: Event, at: datetime, *, event_json: Mapping[str, Any] | None = None
    ) -> Decision:
        """Decide who receives ``event`` at the instant ``at``, and what each receives.

        Args:
            event: a validated canonical event.
            at: the timezone-aware instant of the decision (normally now).
            event_json: ``event.model_dump(mode="json")`` if the caller already has it.

        Returns:
            One disclosure per recipient, and every refusal with its reason.

        Raises:
            ValueError: ``at`` is naive.
        """
        facts = event_facts(event)
        agreement = self.agreement
        if not agreement.in_force(at):
            until = f", expired on {agreement.expires_on}" if agreement.expires_on else ""
            refusal = Refusal(
                None,
                None,
                RefusalReason.AGREEMENT_NOT_IN_FORCE,
                f"agreement version {agreement.version} is not in force at {at.isoformat()} "
                f"(in force from {agreement.effective_from}{until})",
            )
            return self._decision(event, facts, at, (), (refusal,))

        shares: dict[str, _Share] = {}
        refusals: dict[tuple[str | None, str | None, RefusalReason], Refusal] = {}

        def refuse(party: str | None, rule: Rule, reason: RefusalReason, detail: str) -> None:
            refusals.setdefault((party, rule.id, reason), Refusal(party, rule.id, reason, detail))

        matched = False
        for compiled in self._rules:
            if rule_matches(compiled.rule.when, facts):
                matched = True
                self._apply_rule(compiled, facts, at, shares, refuse)

        if not matched:
            refusal = Refusal(
                None,
                None,
                RefusalReason.NO_MATCHING_RULE,
                f"no rule of agreement version {agreement.version} applies to "
                f"a {facts.event_type.value} event from {facts.source}",
            )
            return self._decision(event, facts, at, (), (refusal,))

        source = event_json if event_json is not None else event.model_dump(mode="json")
        disclosures = tuple(
            self._disclosure(party_id, share, source) for party_id, share in shares.items()
        )
        return self._decision(event, facts, at, disclosures, tuple(refusals.values()))

    def _apply_rule(
        self,
        compiled: _CompiledRule,
        facts: EventFacts,
        at: datetime,
        shares: dict[str, _Share],
        refuse: _Refuse,
    ) -> None:
        """Add a matching rule's recipients to ``shares``, or refuse each with its reason."""
        rule = compiled.rule
        rule_in_force = rule.in_force(at)
        for target in compiled.targets:
            for party_id in self._candidates(target.recipient, facts, rule, refuse):
                if not rule_in_force:
                    refuse(
                        party_id,
                        rule,
                        RefusalReason.RULE_NOT_IN_FORCE,
                        f"rule {rule.id} applies but is not in force "
                        f"(from {rule.effective_from or 'the start'} "
                        f"to {rule.expires_on or 'no end'})",
                    )
                    continue
                barred = self._bar(party_id, facts, rule)
                if barred is not None:
                    refuse(party_id, rule, *barred)
                    continue
                share = shares.setdefault(party_id, _Share())
                if not share.rules or share.rules[-1] is not rule:
                    share.rules.append(rule)
                share.fields |= target.fields

    def _candidates(
        self, recipient: Recipient, facts: EventFacts, rule: Rule, refuse: _Refuse
    ) -> list[str]:
        if recipient.party is not None:
            return [recipient.party]
        selector = recipient.select
        assert selector is not None  # noqa: S101 - a recipient is a party or a selector
        boroughs = facts.boroughs_via(selector.borough_of)
        found = [
            p.id
            for p in self.agreement.parties
            if p.kind in selector.kinds and p.borough is not None and p.borough in boroughs
        ]
        if not found:
            where = ", ".join(sorted(boroughs)) or "none known"
            refuse(
                None,
                rule,
                RefusalReason.NO_RECIPIENT_FOUND,
                f"rule {rule.id}: no party for {recipient.label} (boroughs: {where})",
            )
        return found

    def _bar(
        self, party_id: str, facts: EventFacts, rule: Rule
    ) -> tuple[RefusalReason, str] | None:
        """The reason a candidate may not receive under ``rule``, or None if it may."""
        party = self._parties.get(party_id)
        if party is None:
            return (
                RefusalReason.UNKNOWN_PARTY,
                f"rule {rule.id} names {party_id}, which is not a party to the agreement",
            )
        if rule.lawful_basis is LawfulBasis.CDA_1998_S115 and not party.relevant_authority:
            return (
                RefusalReason.NOT_RELEVANT_AUTHORITY,
                f"rule {rule.id} shares under s.115 Crime and Disorder Act 1998 and "
                f"{party_id} is not a relevant authority",
            )
        if party_id == facts.source and not rule.send_to_source:
            return (
                RefusalReason.SOURCE_OF_EVENT,
                f"{party_id} sent this event; rule {rule.id} does not send it back",
            )
        return None

    def _disclosure(self, party_id: str, share: _Share, source: Mapping[str, Any]) -> Disclosure:
        tree, fields = self._tree(frozenset(share.fields))
        bases: list[LawfulBasis] = []
        for rule in share.rules:
            if rule.lawful_basis not in bases:
                bases.append(rule.lawful_basis)
        return Disclosure(
            recipient=party_id,
            rule_ids=tuple(r.id for r in share.rules),
            lawful_bases=tuple(bases),
            purposes=tuple(r.purpose for r in share.rules),
            retention=min((r.retention for r in share.rules), key=lambda r: r.max_days),
            fields=fields,
            event=_minimise_with(source, tree),
        )

    def _decision(
        self,
        event: Event,
        facts: EventFacts,
        at: datetime,
        disclosures: tuple[Disclosure, ...],
        refusals: tuple[Refusal, ...],
    ) -> Decision:
        return Decision(
            event_id=event.metadata.event_id,
            event_type=facts.event_type,
            source=facts.source,
            agreement_version=self.agreement.version,
            evaluated_at=at,
            disclosures=disclosures,
            refusals=refusals,
        )


# Compiled policies for agreements passed straight to evaluate(). Holding the agreement in
# the value keeps it alive, so its id() cannot be reused by another object while cached.
_COMPILED: dict[int, tuple[Agreement, Policy]] = {}
_COMPILED_MAX = 16


def compile_policy(agreement: Agreement) -> Policy:
    """The compiled :class:`Policy` for ``agreement``, cached for the last few agreements."""
    cached = _COMPILED.get(id(agreement))
    if cached is not None and cached[0] is agreement:
        return cached[1]
    policy = Policy(agreement)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[id(agreement)] = (agreement, policy)
    return policy


def evaluate(
    agreement: Agreement | Policy | None,
    event: Event,
    at: datetime,
    *,
    event_json: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide who receives ``event`` under ``agreement`` at ``at`` (default deny).

    Args:
        agreement: the agreement (compiled on first use and cached), a compiled
            :class:`Policy`, or None when no agreement is loaded: then nothing is shared.
        event: a validated canonical event.
        at: the timezone-aware instant of the decision.
        event_json: ``event.model_dump(mode="json")`` if the caller already has it.

    Returns:
        The decision: at most one disclosure per recipient, and every refusal.

    Raises:
        ValueError: ``at`` is naive.
    """
    if agreement is None:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("the evaluation time must be timezone-aware")
        return Decision(
            event_id=event.metadata.event_id,
            event_type=EventType(event.body.type),
            source=event.metadata.source.agency,
            agreement_version=None,
            evaluated_at=at,
            disclosures=(),
            refusals=(
                Refusal(
                    None,
                    None,
                    RefusalReason.NO_AGREEMENT,
                    "no information-sharing agreement is loaded; nothing is shared",
                ),
            ),
        )
    policy = agreement if isinstance(agreement, Policy) else compile_policy(agreement)
    return policy.evaluate(event, at, event_json=event_json)
