"""wrong match: reports that an access event matched the wrong person, and impostor examples

wrong_match_reports holds who reported which event as not which person, and what became of it
(hash-chained, gateway/audit.py); impostor_examples the probe the gate handed over, sealed with
the template key, which the next gallery carries to the gates (docs/decisions/0014).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 01:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.db.schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = gateway.db.schema.UtcDateTime(timezone=True)
    op.create_table(
        "wrong_match_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("gate_key", sa.String(length=200), nullable=False),
        sa.Column("event_ts", utc, nullable=False),
        sa.Column("reported_by", sa.String(length=64), nullable=False),
        sa.Column("reported_at", utc, nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", utc, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("wrong_match_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wrong_match_reports_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_wrong_match_reports_correlation_id"), ["correlation_id"], unique=False
        )
    op.create_table(
        "impostor_examples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("example_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.person_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["report_id"], ["wrong_match_reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id"),
    )
    with op.batch_alter_table("impostor_examples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_impostor_examples_person_id"), ["person_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("impostor_examples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_impostor_examples_person_id"))
    op.drop_table("impostor_examples")
    with op.batch_alter_table("wrong_match_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wrong_match_reports_correlation_id"))
        batch_op.drop_index(batch_op.f("ix_wrong_match_reports_person_id"))
    op.drop_table("wrong_match_reports")
