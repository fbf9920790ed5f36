"""Errors the intake logic raises about the stored state it is given."""

from __future__ import annotations

from broker.exceptions import PayloadInvalid

__all__ = ["InvalidRecord"]


class InvalidRecord(PayloadInvalid):
    """A stored-state record handed to the intake logic is inconsistent.

    For example a naive datetime, or an interview both completed and declined. The
    message names the record kind, its id and the field; never personal data.
    """

    code = "intake_record_invalid"
