"""MASH intake: the alert table (ids and codes in clear, content only as the received JWE).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = sa.DateTime(timezone=True)
_STATUSES = ("new", "acknowledged", "assigned", "decided", "closed")


def upgrade() -> None:
    op.create_table(
        "mash_alert",
        sa.Column("id", _BIG_KEY, autoincrement=True, nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("source_agency", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("lawful_basis", sa.String(length=64), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", _UTC, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *_STATUSES,
                name="alert_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("token", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mash_alert")),
        sa.UniqueConstraint("jti", name=op.f("uq_mash_alert_jti")),
        sa.UniqueConstraint("recipient", "event_id", name=op.f("uq_mash_alert_recipient_event_id")),
    )
    op.create_index(op.f("ix_mash_alert_correlation_id"), "mash_alert", ["correlation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_mash_alert_correlation_id"), table_name="mash_alert")
    op.drop_table("mash_alert")
