"""Storage and audit tables: outbox, inbox, audit chain and checkpoints, raw messages, replay ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's types: a migration must not change when the code does.
_BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = sa.DateTime(timezone=True)
_GENESIS_HASH = "0" * 64
_AUDIT_KINDS = (
    "received",
    "rejected",
    "shared",
    "refused",
    "published",
    "delivered",
    "dead_lettered",
    "opened",
)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("seq", _BIG_KEY, autoincrement=False, nullable=False),
        sa.Column("at", _UTC, nullable=False),
        sa.Column("kind", _enum("audit_kind", *_AUDIT_KINDS), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("party", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("recipient", sa.String(length=64), nullable=True),
        sa.Column("rule_id", sa.String(length=128), nullable=True),
        sa.Column("lawful_basis", sa.String(length=64), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("jti", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.String(length=512), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("length(detail) <= 512", name=op.f("ck_audit_entry_detail_bounded")),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_audit_entry_seq_positive")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entry")),
    )
    op.create_index(op.f("ix_audit_entry_event_id"), "audit_entry", ["event_id"])
    op.create_index(op.f("ix_audit_entry_jti"), "audit_entry", ["jti"])

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", _UTC, nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    # The one head row exists from the start, so every append can lock it.
    head = sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq"), sa.column("hash"))
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": _GENESIS_HASH}])

    op.create_table(
        "audit_checkpoint",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", _UTC, nullable=False),
        sa.Column("kid", sa.String(length=128), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoint")),
    )

    op.create_table(
        "outbox",
        sa.Column("id", _BIG_KEY, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=255), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("status", _enum("outbox_status", "pending", "sent", "failed"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _UTC, nullable=True),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.Column("sent_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("jti", name=op.f("uq_outbox_jti")),
    )
    op.create_index(op.f("ix_outbox_event_id"), "outbox", ["event_id"])
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])

    op.create_table(
        "inbox",
        sa.Column("id", _BIG_KEY, nullable=False),
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("processed_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("consumer", "message_id", name=op.f("uq_inbox_consumer_message_id")),
    )

    op.create_table(
        "raw_message",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("adapter", sa.String(length=32), nullable=False),
        sa.Column("source_party", sa.String(length=64), nullable=False),
        sa.Column("received_at", _UTC, nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_message")),
    )

    op.create_table(
        "replay_seen",
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("expires_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_replay_seen")),
    )
    op.create_index(op.f("ix_replay_seen_expires_at"), "replay_seen", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_replay_seen_expires_at"), table_name="replay_seen")
    op.drop_table("replay_seen")
    op.drop_table("raw_message")
    op.drop_table("inbox")
    op.drop_index("ix_outbox_status_id", table_name="outbox")
    op.drop_index(op.f("ix_outbox_event_id"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("audit_checkpoint")
    op.drop_table("audit_head")
    op.drop_index(op.f("ix_audit_entry_jti"), table_name="audit_entry")
    op.drop_index(op.f("ix_audit_entry_event_id"), table_name="audit_entry")
    op.drop_table("audit_entry")
