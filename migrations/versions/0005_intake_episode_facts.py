"""MASH intake: each episode alert keeps the fact it states about its episode.

A new alert then folds its episode from the stored facts instead of opening every earlier
alert of the episode again. Rows from before this revision have no fact; the store opens
those alerts once more when it meets them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("intake_alert") as batch:
        batch.add_column(sa.Column("episode_fact", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("intake_alert") as batch:
        batch.drop_column("episode_fact")
