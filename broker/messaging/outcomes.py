"""The outcomes a message handler signals by raising: dead-letter now, or try again later."""

from __future__ import annotations

from broker.exceptions import BrokerError

__all__ = ["RejectMessage", "RetryLater"]

_MAX_REASON = 200


class RejectMessage(BrokerError):
    """The message can never be processed: dead-letter it now, with the reason.

    The reason is stored in a header of the dead-lettered copy and logged with the message
    id, so it must name ids, fields and codes only, never personal data.
    """

    code = "rejected"

    def __init__(self, reason: str) -> None:
        self.reason = _clean(reason)
        super().__init__(self.reason)


class RetryLater(BrokerError):
    """The message could not be processed now but may be later: requeue it.

    The queue's delivery limit dead-letters a message that keeps failing.
    """

    code = "retry"

    def __init__(self, reason: str = "retry later") -> None:
        self.reason = _clean(reason)
        super().__init__(self.reason)


def _clean(reason: str) -> str:
    """One printable line of bounded length, fit for an AMQP header and a log line."""
    printable = "".join(ch if ch.isprintable() else " " for ch in reason).strip()
    return printable[:_MAX_REASON] or "no reason given"
