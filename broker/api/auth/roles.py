"""Staff roles and what each may do."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AUDIT_READERS", "Role"]


class Role(StrEnum):
    """A member of staff's role; an account may hold several."""

    #: MASH intake staff: triage alerts (issue 6's pages).
    INTAKE = "intake"
    #: Team managers: intake work plus KPIs and assignment.
    MANAGER = "manager"
    #: The data protection officer: audit search and chain verification.
    DPO = "dpo"
    #: Internal or external auditors: read-only audit search and verification.
    AUDITOR = "auditor"
    #: Operators: accounts, metrics, chain verification; no access to case content.
    ADMIN = "admin"


#: The roles that may search the audit log.
AUDIT_READERS = frozenset({Role.DPO, Role.AUDITOR})
