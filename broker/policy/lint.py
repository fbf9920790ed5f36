"""``policy check``: find what is wrong or dead in an agreement, with YAML line numbers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from broker.policy.facts import CSE_LEVEL_TYPES, FLAG_TYPES, RISK_GRADE_TYPES, ROLES_BY_TYPE
from broker.policy.fields import field_catalogue
from broker.policy.findings import Finding, Severity
from broker.policy.loader import LineMap, ParsedAgreement, parse_agreement, read_agreement_file
from broker.policy.model import UK, Agreement, BoroughRole, PartyKind, Recipient, Rule
from schemas.events import EventType, LawfulBasis

__all__ = ["check_file", "check_text", "has_errors", "lint_agreement"]

_Path = tuple[str | int, ...]
_BOROUGH_KINDS = frozenset({PartyKind.BOROUGH_PANEL, PartyKind.NEIGHBOURING_BROKER})


def _today() -> date:
    return datetime.now(UTC).astimezone(UK).date()


class _Linter:
    """Collects findings for one agreement; each check is one method."""

    def __init__(self, agreement: Agreement, today: date, lines: LineMap) -> None:
        self.agreement = agreement
        self.today = today
        self.lines = lines
        self.findings: list[Finding] = []
        self.party_ids = {p.id for p in agreement.parties}

    def add(self, severity: Severity, code: str, message: str, path: _Path, where: str) -> None:
        self.findings.append(Finding(severity, code, message, self.lines.line_for(path), where))

    def error(self, code: str, message: str, path: _Path, where: str) -> None:
        self.add(Severity.ERROR, code, message, path, where)

    def warning(self, code: str, message: str, path: _Path, where: str) -> None:
        self.add(Severity.WARNING, code, message, path, where)

    # ------------------------------------------------------------------ whole agreement

    def check_period(self) -> None:
        a = self.agreement
        if a.expires_on is not None and a.expires_on <= a.effective_from:
            self.error(
                "never-in-force",
                f"expires on {a.expires_on}, not after it takes effect on {a.effective_from}",
                ("expires_on",),
                "agreement",
            )
        elif a.expires_on is not None and a.expires_on <= self.today:
            self.error(
                "expired",
                f"the agreement expired on {a.expires_on}: nothing is shared",
                ("expires_on",),
                "agreement",
            )
        if a.effective_from > self.today:
            self.warning(
                "not-yet-in-force",
                f"the agreement takes effect on {a.effective_from}",
                ("effective_from",),
                "agreement",
            )

    def check_parties(self) -> None:
        home = self.agreement.partnership.borough
        for i, party in enumerate(self.agreement.parties):
            where = f"party {party.id}"
            if party.kind is PartyKind.VOLUNTARY_SECTOR and party.relevant_authority:
                self.warning(
                    "relevant-authority",
                    "a voluntary-sector body is not among the "
                    "relevant authorities of s.115(2) Crime and Disorder Act 1998",
                    ("parties", i, "relevant_authority"),
                    where,
                )
            if party.kind in _BOROUGH_KINDS and party.borough is None:
                self.warning(
                    "no-borough",
                    f"a {party.kind.value} without a borough is never found by a selector",
                    ("parties", i, "kind"),
                    where,
                )
            if party.kind is PartyKind.NEIGHBOURING_BROKER and party.borough == home:
                self.warning(
                    "own-borough",
                    f"a neighbouring broker in the partnership's own borough {home}",
                    ("parties", i, "borough"),
                    where,
                )
            if not self._reachable(party.id):
                self.warning(
                    "unused-party", "no rule shares anything with this party", ("parties", i), where
                )

    def _reachable(self, party_id: str) -> bool:
        party = self.agreement.party(party_id)
        assert party is not None  # noqa: S101 - called for listed parties only
        for rule in self.agreement.rules:
            for r in rule.share_with:
                if r.party == party_id:
                    return True
                if r.select and party.kind in r.select.kinds and party.borough is not None:
                    return True
        return False

    def check_field_sets(self) -> None:
        catalogue = field_catalogue()
        used = {
            name for rule in self.agreement.rules for r in rule.share_with for name in r.field_sets
        }
        for name, paths in self.agreement.field_sets.items():
            where = f"field set {name}"
            for k, path in enumerate(paths):
                problem = catalogue.problem(path)
                if problem:
                    self.error("unknown-field", problem, ("field_sets", name, k), where)
            self._duplicates(paths, ("field_sets", name), where, "field")
            if name not in used:
                self.warning(
                    "unused-field-set", "no rule uses this field set", ("field_sets", name), where
                )

    def _duplicates(self, values: Iterable[object], path: _Path, where: str, noun: str) -> None:
        for value, count in Counter(values).items():
            if count > 1:
                self.warning(
                    "duplicate-value", f"{noun} {value} is listed {count} times", path, where
                )

    # ------------------------------------------------------------------ rules

    def check_rule(self, i: int, rule: Rule) -> None:
        where = f"rule {rule.id}"
        base: _Path = ("rules", i)
        types = self._types(rule)
        self._rule_period(rule, base, where)
        self._conditions(rule, types, base, where)
        explicit = Counter(r.party for r in rule.share_with if r.party is not None)
        for j, recipient in enumerate(rule.share_with):
            path = (*base, "share_with", j)
            if recipient.party is not None:
                if explicit[recipient.party] > 1:
                    self.error(
                        "duplicate-recipient",
                        f"{recipient.party} is listed more than "
                        "once; give it one entry with all its fields",
                        path,
                        where,
                    )
                    explicit[recipient.party] = 0  # report once
                self._named_recipient(rule, recipient.party, path, where)
            else:
                self._selector(rule, recipient, types, path, where)
            self._fields(recipient, types, path, where)

    def _types(self, rule: Rule) -> list[EventType]:
        if rule.when.event_types is None:
            return list(EventType)
        return list(dict.fromkeys(rule.when.event_types))

    def _rule_period(self, rule: Rule, base: _Path, where: str) -> None:
        a = self.agreement
        start, end = rule.effective_from, rule.expires_on
        if start is not None and end is not None and end <= start:
            self.error(
                "never-in-force",
                f"expires on {end}, not after it takes effect on {start}",
                (*base, "expires_on"),
                where,
            )
        elif end is not None and end <= a.effective_from:
            self.error(
                "never-in-force",
                f"expires on {end}, before the agreement takes effect on {a.effective_from}",
                (*base, "expires_on"),
                where,
            )
        elif start is not None and a.expires_on is not None and start >= a.expires_on:
            self.error(
                "never-in-force",
                f"takes effect on {start}, after the agreement expires on {a.expires_on}",
                (*base, "effective_from"),
                where,
            )
        elif end is not None and end <= self.today:
            self.error(
                "expired", f"expired on {end}: it never matches again", (*base, "expires_on"), where
            )
        elif start is not None and start > self.today:
            self.warning(
                "not-yet-in-force", f"takes effect on {start}", (*base, "effective_from"), where
            )

    def _conditions(self, rule: Rule, types: list[EventType], base: _Path, where: str) -> None:
        when = rule.when
        cpath = (*base, "when")
        lists: dict[str, tuple[object, ...] | None] = {
            "event_types": when.event_types,
            "risk_grades": when.risk_grades,
            "cse_levels": when.cse_levels,
            "safeguarding_flags": when.safeguarding_flags,
            "from_parties": when.from_parties,
        }
        for name, values in lists.items():
            if values is None:
                continue
            if not values:
                self.error(
                    "never-matches",
                    f"condition {name} is an empty list: the rule never matches",
                    (*cpath, name),
                    where,
                )
            self._duplicates(values, (*cpath, name), where, name.removesuffix("s"))
        applicable = {
            "risk_grades": (when.risk_grades, RISK_GRADE_TYPES, "a risk grade"),
            "cse_levels": (when.cse_levels, CSE_LEVEL_TYPES, "a CSE level"),
            "safeguarding_flags": (when.safeguarding_flags, FLAG_TYPES, "safeguarding flags"),
        }
        for name, (values, carriers, what) in applicable.items():
            if values and not carriers.intersection(types):
                self.error(
                    "never-matches",
                    f"condition {name}: none of its event types "
                    f"({', '.join(types)}) carries {what}",
                    (*cpath, name),
                    where,
                )
        for k, party_id in enumerate(when.from_parties or ()):
            if party_id not in self.party_ids:
                self.error(
                    "unknown-party",
                    f"from_parties names {party_id}, which is not a party",
                    (*cpath, "from_parties", k),
                    where,
                )
        if when.linked_to is not None:
            lpath = (*cpath, "linked_to")
            if not when.linked_to.boroughs or not when.linked_to.via:
                self.error(
                    "never-matches",
                    "linked_to needs boroughs and roles: the rule never matches",
                    lpath,
                    where,
                )
            elif not self._roles_possible(when.linked_to.via, types):
                self.error(
                    "never-matches",
                    f"linked_to via {', '.join(when.linked_to.via)}: no "
                    f"event of type {', '.join(types)} has those boroughs",
                    lpath,
                    where,
                )

    @staticmethod
    def _roles_possible(roles: Iterable[BoroughRole], types: list[EventType]) -> bool:
        wanted = set(roles)
        if BoroughRole.LINKED in wanted:
            return True
        return any(wanted & ROLES_BY_TYPE[t] for t in types)

    def _named_recipient(self, rule: Rule, party_id: str, path: _Path, where: str) -> None:
        party = self.agreement.party(party_id)
        if party is None:
            self.error(
                "unknown-party",
                f"recipient {party_id} is not a party to the agreement",
                (*path, "party"),
                where,
            )
            return
        if rule.lawful_basis is LawfulBasis.CDA_1998_S115 and not party.relevant_authority:
            self.error(
                "not-relevant-authority",
                f"recipient {party_id} is not a relevant "
                "authority and cannot receive under s.115 Crime and Disorder Act 1998",
                (*path, "party"),
                where,
            )
        sources = rule.when.from_parties
        if sources is not None and set(sources) == {party_id} and not rule.send_to_source:
            self.error(
                "never-shares",
                f"{party_id} is the only source this rule applies to, "
                "and the source is not sent its own event",
                (*path, "party"),
                where,
            )

    def _selector(
        self, rule: Rule, recipient: Recipient, types: list[EventType], path: _Path, where: str
    ) -> None:
        selector = recipient.select
        assert selector is not None  # noqa: S101 - a recipient is a party or a selector
        spath = (*path, "select")
        if not self._roles_possible(selector.borough_of, types):
            self.error(
                "never-matches",
                f"selector borough_of {', '.join(selector.borough_of)}: "
                f"no event of type {', '.join(types)} has those boroughs",
                spath,
                where,
            )
        reachable = [
            p for p in self.agreement.parties if p.kind in selector.kinds and p.borough is not None
        ]
        if not reachable:
            self.error(
                "never-matches",
                f"no party of kind {', '.join(selector.kinds)} has a "
                "borough: the selector never finds a recipient",
                spath,
                where,
            )
        if rule.lawful_basis is LawfulBasis.CDA_1998_S115:
            for party in reachable:
                if not party.relevant_authority:
                    self.warning(
                        "not-relevant-authority",
                        f"the selector can reach {party.id}, "
                        "which is not a relevant authority: it is refused under s.115 "
                        "and the refusal is recorded",
                        spath,
                        where,
                    )

    def _fields(
        self, recipient: Recipient, types: list[EventType], path: _Path, where: str
    ) -> None:
        catalogue = field_catalogue()
        for k, field_path in enumerate(recipient.fields):
            problem = catalogue.problem(field_path, types)
            if problem:
                self.error("unknown-field", problem, (*path, "fields", k), where)
        self._duplicates(recipient.fields, (*path, "fields"), where, "field")
        for k, name in enumerate(recipient.field_sets):
            paths = self.agreement.field_sets.get(name)
            if paths is None:
                self.error(
                    "unknown-field-set",
                    f"field set {name} is not defined",
                    (*path, "field_sets", k),
                    where,
                )
                continue
            # A set is a reusable vocabulary, so some of its fields may not exist for this
            # rule's event types; a set with none that do is a mistake.
            if paths and all(catalogue.problem(p, types) for p in paths):
                self.error(
                    "unknown-field",
                    f"field set {name}: none of its fields is in the "
                    f"schema of {', '.join(types)} events",
                    (*path, "field_sets", k),
                    where,
                )
        if not recipient.fields and not recipient.field_sets:
            self.warning(
                "no-fields",
                f"{recipient.label} receives only the routing fields "
                "(event id, schema version, classification, type)",
                path,
                where,
            )


def lint_agreement(
    agreement: Agreement, *, today: date | None = None, lines: LineMap | None = None
) -> list[Finding]:
    """Check a loaded agreement for what is wrong or can never take effect.

    Args:
        agreement: the agreement.
        today: the UK date to judge expiry against (default: today).
        lines: where each part of the YAML starts, to locate findings.

    Returns:
        Findings in file order (errors and warnings).
    """
    linter = _Linter(agreement, today or _today(), lines or LineMap())
    linter.check_period()
    linter.check_parties()
    linter.check_field_sets()
    for i, rule in enumerate(agreement.rules):
        linter.check_rule(i, rule)
    if not agreement.rules:
        linter.warning(
            "no-rules", "the agreement has no rules: nothing is shared", ("rules",), "agreement"
        )
    return sorted(linter.findings, key=lambda f: (f.line or 0, f.severity != Severity.ERROR))


def _check(parsed: ParsedAgreement, today: date | None) -> list[Finding]:
    if parsed.agreement is None:
        return list(parsed.findings)
    return [*parsed.findings, *lint_agreement(parsed.agreement, today=today, lines=parsed.lines)]


def check_text(
    text: str, source: str = "<agreement>", *, today: date | None = None
) -> list[Finding]:
    """Parse and lint agreement YAML text: structural problems first, then the lint's."""
    return _check(parse_agreement(text, source), today)


def check_file(path: Path, *, today: date | None = None) -> list[Finding]:
    """Parse and lint an agreement file.

    Raises:
        ConfigurationError: the file cannot be read.
    """
    return _check(read_agreement_file(path), today)


def has_errors(findings: Iterable[Finding]) -> bool:
    """Whether any finding is an error (warnings alone leave the agreement usable)."""
    return any(f.severity is Severity.ERROR for f in findings)
