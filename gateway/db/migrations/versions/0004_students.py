"""students: student accounts and their "notify me" watches

users.person_id ties a ``student`` account to its own person; watches holds a student's
"tell me when this machine finishes / when a washer is free", fired in the ingest transaction.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = gateway.db.schema.UtcDateTime(timezone=True)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_users_person_id", ["person_id"])
    op.create_table(
        "watches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_key", sa.String(length=260), nullable=True),
        sa.Column("building", sa.String(length=64), nullable=False),
        sa.Column("room", sa.String(length=64), nullable=True),
        sa.Column("device_kind", sa.String(length=32), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("fired_at", utc, nullable=True),
        sa.Column("fired_device_key", sa.String(length=260), nullable=True),
        sa.Column("cancelled_at", utc, nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.person_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_watches_person_id"), ["person_id"], unique=False)
        batch_op.create_index("ix_watches_device_open", ["device_key", "fired_at"], unique=False)
        batch_op.create_index("ix_watches_building_open", ["building", "fired_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.drop_index("ix_watches_building_open")
        batch_op.drop_index("ix_watches_device_open")
        batch_op.drop_index(batch_op.f("ix_watches_person_id"))
    op.drop_table("watches")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_person_id", type_="unique")
        batch_op.drop_column("person_id")
