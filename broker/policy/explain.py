"""``policy explain``: a decision told for people, recipient by recipient, refusal by refusal.

Field names are shown, never field values: an explanation is safe to paste into a ticket.
"""

from __future__ import annotations

import textwrap
from typing import Any

from broker.policy.engine import Decision
from broker.policy.model import Agreement

__all__ = ["explain_dict", "explain_text"]

_WIDTH = 100


def _name(agreement: Agreement | None, party_id: str | None) -> str:
    if party_id is None:
        return "(no recipient)"
    party = agreement.party(party_id) if agreement is not None else None
    return f"{party_id} ({party.name})" if party is not None else f"{party_id} (not a party)"


def _wrapped(label: str, text: str) -> list[str]:
    prefix = f"    {label:<10} "
    return textwrap.wrap(
        text, width=_WIDTH, initial_indent=prefix, subsequent_indent=" " * len(prefix)
    ) or [prefix.rstrip()]


def explain_text(decision: Decision, agreement: Agreement | None) -> str:
    """A plain-text account of ``decision``: every recipient with its fields, rules, basis,
    purpose and retention, then every refusal with its reason.

    Args:
        decision: from :func:`broker.policy.engine.evaluate`.
        agreement: the agreement it was made under, for party names (None if there was none).
    """
    version = decision.agreement_version or "none"
    out = [
        f"Event {decision.event_id} ({decision.event_type.value}) from {decision.source}",
        f"Agreement version {version}, evaluated at {decision.evaluated_at.isoformat()}",
        "",
    ]
    if decision.disclosures:
        count = len(decision.disclosures)
        out.append(f"Shared with {count} recipient{'s' if count != 1 else ''}:")
    else:
        out.append("Shared with nobody.")
    for d in decision.disclosures:
        out.append(f"  {_name(agreement, d.recipient)}")
        out += _wrapped("rules:", ", ".join(d.rule_ids))
        out += _wrapped("basis:", ", ".join(b.value for b in d.lawful_bases))
        for purpose in dict.fromkeys(d.purposes):
            out += _wrapped("purpose:", purpose)
        out += _wrapped("retention:", str(d.retention))
        out += _wrapped("fields:", ", ".join(d.shared_fields()))
    if decision.refusals:
        out += ["", f"Refused ({len(decision.refusals)}):"]
    for r in decision.refusals:
        out.append(f"  {_name(agreement, r.recipient)}")
        if r.rule_id is not None:
            out += _wrapped("rule:", r.rule_id)
        out += _wrapped("reason:", f"{r.reason.value}: {r.detail}")
    return "\n".join(out) + "\n"


def explain_dict(decision: Decision, agreement: Agreement | None) -> dict[str, Any]:
    """The decision as JSON-able data, with party names and field names (no field values)."""
    data = decision.to_dict(with_events=False)
    for item in (*data["disclosures"], *data["refusals"]):
        party_id = item["recipient"]
        party = agreement.party(party_id) if agreement is not None and party_id else None
        item["recipient_name"] = party.name if party is not None else None
    return data
