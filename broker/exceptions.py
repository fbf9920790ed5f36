"""The broker's error tree: every failure a caller can meet, typed and located.

::

    BrokerError
    ├── ConfigurationError        settings, key files, agreement files unusable
    ├── SecurityError             anything that fails a cryptographic or trust check
    │   ├── SignatureInvalid      JWS signature or claims do not verify
    │   ├── DecryptionFailed      JWE cannot be decrypted (wrong key, tampered bytes)
    │   ├── UnknownKey            kid not in the registry, or key expired / revoked / not yet valid
    │   ├── AlgorithmRefused      alg / enc outside the allow-list, or a `zip` header
    │   ├── ClaimsInvalid         iss / aud / exp / iat / jti wrong or missing
    │   ├── ReplayDetected        a jti seen before within its lifetime
    │   └── PayloadTooLarge       input over the size limit, refused before parsing
    ├── PolicyDenied              the agreement does not allow this disclosure
    ├── PayloadInvalid            a message that is well-formed JOSE but not a valid event
    └── TransportError            RabbitMQ or database unreachable, timed out, unroutable

Adapters raise ``adapters.base.AdapterError`` (a ``PayloadInvalid``) with the location of
the fault. Messages name ids, fields and places; they never carry personal data.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmRefused",
    "BrokerError",
    "ClaimsInvalid",
    "ConfigurationError",
    "DecryptionFailed",
    "PayloadInvalid",
    "PayloadTooLarge",
    "PolicyDenied",
    "ReplayDetected",
    "SecurityError",
    "SignatureInvalid",
    "TransportError",
    "UnknownKey",
]


class BrokerError(Exception):
    """Base of every error the broker raises on purpose."""

    #: A short stable code for audit entries, metrics labels and API error bodies.
    code: str = "broker_error"


class ConfigurationError(BrokerError):
    """Settings, key files or the agreement cannot be used as given."""

    code = "configuration"


class SecurityError(BrokerError):
    """A message or credential failed a cryptographic or trust check."""

    code = "security"


class SignatureInvalid(SecurityError):
    """The JWS signature does not verify against the sender's registered key."""

    code = "signature_invalid"


class DecryptionFailed(SecurityError):
    """The JWE cannot be decrypted with the recipient's key."""

    code = "decryption_failed"


class UnknownKey(SecurityError):
    """The key id is not in the registry, or the key is expired, revoked or not yet valid."""

    code = "unknown_key"


class AlgorithmRefused(SecurityError):
    """An algorithm outside the allow-list, or a header the broker never accepts."""

    code = "algorithm_refused"


class ClaimsInvalid(SecurityError):
    """A JWT claim is missing or wrong (issuer, audience, expiry, issued-at, id)."""

    code = "claims_invalid"


class ReplayDetected(SecurityError):
    """A token id was seen before within its lifetime."""

    code = "replay"


class PayloadTooLarge(SecurityError):
    """Input over the configured size limit, refused before any parsing."""

    code = "too_large"


class PolicyDenied(BrokerError):
    """The information-sharing agreement does not allow this disclosure."""

    code = "policy_denied"


class PayloadInvalid(BrokerError):
    """Input that cannot be turned into a valid canonical event."""

    code = "payload_invalid"


class TransportError(BrokerError):
    """RabbitMQ or the database is unreachable, timed out, or refused a message."""

    code = "transport"
