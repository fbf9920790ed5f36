"""MASH intake: link reviews indexed by their provisional child.

Linking a doubtful match looks up the open reviews of its candidate children only; without
the index that look-up reads every review ever filed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_intake_link_review_child_key", "intake_link_review", ["child_key"])


def downgrade() -> None:
    op.drop_index("ix_intake_link_review_child_key", table_name="intake_link_review")
