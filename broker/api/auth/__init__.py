"""Authentication and authorisation: partner client assertions, staff accounts, roles."""

from __future__ import annotations

from broker.api.auth.accounts import MIN_PASSWORD_LENGTH, USERNAME_PATTERN, AccountStore
from broker.api.auth.assertion import (
    ALLOWED_ALGS,
    CheckedAssertion,
    ClientAssertionVerifier,
    PartnerIdentity,
    parse_unverified_header,
)
from broker.api.auth.errors import AccessDenied, CredentialRefused
from broker.api.auth.identity import StaffIdentity, StaffVerifier
from broker.api.auth.roles import AUDIT_READERS, Role
from broker.api.auth.tokens import (
    STAFF_AUDIENCE,
    STAFF_TOKEN_TYPE,
    IssuedToken,
    LocalStaffVerifier,
    StaffTokens,
)

__all__ = [
    "ALLOWED_ALGS",
    "AUDIT_READERS",
    "MIN_PASSWORD_LENGTH",
    "STAFF_AUDIENCE",
    "STAFF_TOKEN_TYPE",
    "USERNAME_PATTERN",
    "AccessDenied",
    "AccountStore",
    "CheckedAssertion",
    "ClientAssertionVerifier",
    "CredentialRefused",
    "IssuedToken",
    "LocalStaffVerifier",
    "PartnerIdentity",
    "Role",
    "StaffIdentity",
    "StaffTokens",
    "StaffVerifier",
    "parse_unverified_header",
]
