"""MASH intake store: blinded children, triage state and history, episodes, tracker, clocks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's types: a migration must not change when the code does.
_BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = sa.DateTime(timezone=True)


def _key(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=32), nullable=True)


def upgrade() -> None:
    op.create_table(
        "intake_child",
        sa.Column("child_key", sa.String(length=32), nullable=False),
        *(
            sa.Column(name, sa.String(length=64), nullable=True)
            for name in (
                "nhs_number",
                "paris_id",
                "police_person_ref",
                "family_name",
                "given_name",
                "date_of_birth",
            )
        ),
        sa.Column("merged_into", sa.String(length=32), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("child_key", name=op.f("pk_intake_child")),
    )
    for name in ("nhs_number", "paris_id", "police_person_ref"):
        op.create_index(op.f(f"ix_intake_child_{name}"), "intake_child", [name])
    op.create_index(
        "ix_intake_child_weak", "intake_child", ["family_name", "given_name", "date_of_birth"]
    )

    op.create_table(
        "intake_alert",
        sa.Column("alert_id", _BIG_KEY, autoincrement=False, nullable=False),
        _key("child_key"),
        sa.Column("episode_id", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", _UTC, nullable=True),
        sa.Column("band", sa.String(length=16), nullable=False),
        sa.Column("band_rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("link", sa.String(length=16), nullable=False),
        sa.Column("linked_by", sa.String(length=32), nullable=True),
        sa.Column("assigned_to", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=True),
        sa.Column("acknowledged_at", _UTC, nullable=True),
        sa.Column("assigned_at", _UTC, nullable=True),
        sa.Column("decided_at", _UTC, nullable=True),
        sa.Column("closed_at", _UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["mash_alert.id"], name=op.f("fk_intake_alert_alert_id_mash_alert")
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_intake_alert")),
    )
    op.create_index(op.f("ix_intake_alert_child_key"), "intake_alert", ["child_key"])
    op.create_index(op.f("ix_intake_alert_episode_id"), "intake_alert", ["episode_id"])

    op.create_table(
        "intake_action",
        sa.Column("id", _BIG_KEY, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        _key("child_key"),
        sa.Column("episode_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=True),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", _UTC, nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_action")),
    )
    op.create_index(op.f("ix_intake_action_alert_id"), "intake_action", ["alert_id"])
    op.create_index(op.f("ix_intake_action_child_key"), "intake_action", ["child_key"])

    op.create_table(
        "intake_episode",
        sa.Column("episode_id", sa.String(length=64), nullable=False),
        sa.Column("child_key", sa.String(length=32), nullable=False),
        sa.Column("reported_at", _UTC, nullable=False),
        sa.Column("risk_grade", sa.String(length=24), nullable=True),
        sa.Column("found_at", _UTC, nullable=True),
        sa.Column("returned_at", _UTC, nullable=True),
        sa.Column("missing_from", sa.String(length=9), nullable=True),
        sa.Column("home_authority", sa.String(length=9), nullable=True),
        sa.Column("looked_after", sa.Boolean(), nullable=False),
        sa.Column("placed_in", sa.String(length=9), nullable=True),
        sa.Column("rhi_offered_at", _UTC, nullable=True),
        sa.Column("rhi_completed_at", _UTC, nullable=True),
        sa.Column("rhi_declined_at", _UTC, nullable=True),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("episode_id", name=op.f("pk_intake_episode")),
    )
    op.create_index(op.f("ix_intake_episode_child_key"), "intake_episode", ["child_key"])

    op.create_table(
        "intake_notification",
        sa.Column("id", _BIG_KEY, nullable=False),
        sa.Column("episode_id", sa.String(length=64), nullable=False),
        sa.Column("authority", sa.String(length=9), nullable=False),
        sa.Column("notified_at", _UTC, nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_notification")),
    )
    op.create_index(
        op.f("ix_intake_notification_episode_id"), "intake_notification", ["episode_id"]
    )

    op.create_table(
        "intake_tracker",
        sa.Column("id", _BIG_KEY, nullable=False),
        sa.Column("child_key", sa.String(length=32), nullable=False),
        sa.Column("identified_on", sa.Date(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("removed_on", sa.Date(), nullable=True),
        sa.Column("removal_reason", sa.String(length=32), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_tracker")),
        sa.UniqueConstraint(
            "child_key", "identified_on", name=op.f("uq_intake_tracker_child_key_identified_on")
        ),
    )
    op.create_index(op.f("ix_intake_tracker_child_key"), "intake_tracker", ["child_key"])

    op.create_table(
        "intake_clock",
        sa.Column("clock_id", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        _key("child_key"),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("episode_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", _UTC, nullable=False),
        sa.Column("due_at", _UTC, nullable=False),
        sa.Column("met_at", _UTC, nullable=True),
        sa.Column("authority", sa.String(length=9), nullable=True),
        sa.Column("instance", sa.String(length=64), nullable=True),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("clock_id", name=op.f("pk_intake_clock")),
    )
    for name in ("child_key", "alert_id", "episode_id", "due_at"):
        op.create_index(op.f(f"ix_intake_clock_{name}"), "intake_clock", [name])

    op.create_table(
        "intake_link_review",
        sa.Column("id", _BIG_KEY, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("child_key", sa.String(length=32), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("agreeing", sa.JSON(), nullable=False),
        sa.Column("conflicting", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", _UTC, nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_link_review")),
    )
    op.create_index(op.f("ix_intake_link_review_alert_id"), "intake_link_review", ["alert_id"])
    op.create_index(op.f("ix_intake_link_review_status"), "intake_link_review", ["status"])


_TABLES = (
    "intake_link_review",
    "intake_clock",
    "intake_tracker",
    "intake_notification",
    "intake_episode",
    "intake_action",
    "intake_alert",
    "intake_child",
)


def downgrade() -> None:
    # Dropping a table drops its indexes with it on both backends.
    for table in _TABLES:
        op.drop_table(table)
