"""seen_events.stored_by: which gateway (client id) stored each event

A gateway killed between its commit and the hand-over of the batch's time-series points to the
writers gets those messages again from the broker at its restart; they are duplicates by then.
Knowing that it stored them itself, it writes their points again (an overwrite where they did
arrive). Rows from before this revision have none, and their redeliveries make no points.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 18:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("seen_events", sa.Column("stored_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seen_events", schema=None) as batch_op:
        batch_op.drop_column("stored_by")
