"""rule journal: the messages the alert rules read, and the elected evaluator's cursor

With several gateway replicas one of them, elected, evaluates the alert rules from this journal
in commit order (gateway/alerts/evaluator.py, docs/decisions/0016).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db.schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = gateway.db.schema.UtcDateTime(timezone=True)
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "rule_inputs",
        sa.Column("id", big, autoincrement=True, nullable=False),
        sa.Column("received_at", utc, nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "rule_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", big, nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("lease_until", utc, nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("rule_cursor")
    op.drop_table("rule_inputs")
