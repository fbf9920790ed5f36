"""How many disclosures for each neighbour are still in the outbox, not yet on its queue."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col

from broker.db import session_scope
from broker.models import OutboxMessage, OutboxStatus

__all__ = ["outbox_pending_by_recipient"]


def outbox_pending_by_recipient(
    bind: Engine | sessionmaker[Session], recipients: Iterable[str]
) -> dict[str, int]:
    """Unpublished outbox rows for each of ``recipients`` (0 for those with none).

    Raises:
        TransportError: the database is unavailable.
    """
    wanted = list(recipients)
    counts = dict.fromkeys(wanted, 0)
    if not wanted:
        return counts
    with session_scope(bind) as session:
        rows = session.execute(
            select(col(OutboxMessage.recipient), func.count())
            .where(
                col(OutboxMessage.status) == OutboxStatus.PENDING,
                col(OutboxMessage.recipient).in_(wanted),
            )
            .group_by(col(OutboxMessage.recipient))
        ).all()
    counts.update({str(recipient): int(count) for recipient, count in rows})
    return counts
