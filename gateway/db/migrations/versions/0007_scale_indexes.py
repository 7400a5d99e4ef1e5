"""indexes a semester of data needs (bench/campus_scale.py's plans)

The access log's person and gate indexes end in id, so the console's newest-first pages come
from the index alone on PostgreSQL; late returns are read by time for welfare; the facilities
board orders devices by building, room and id; the retention deletes device states by time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 03:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index("ix_access_log_person_ts")
        batch_op.drop_index("ix_access_log_gate_ts")
        batch_op.create_index("ix_access_log_person_ts", ["person_id", "ts", "id"], unique=False)
        batch_op.create_index(
            "ix_access_log_gate_ts", ["building", "gate_id", "ts", "id"], unique=False
        )
    with op.batch_alter_table("late_returns", schema=None) as batch_op:
        batch_op.create_index("ix_late_returns_ts", ["ts"], unique=False)
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index("ix_devices_board", ["building", "room", "device_id"], unique=False)
    with op.batch_alter_table("device_states", schema=None) as batch_op:
        batch_op.create_index("ix_device_states_ts", ["ts"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("device_states", schema=None) as batch_op:
        batch_op.drop_index("ix_device_states_ts")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index("ix_devices_board")
    with op.batch_alter_table("late_returns", schema=None) as batch_op:
        batch_op.drop_index("ix_late_returns_ts")
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index("ix_access_log_gate_ts")
        batch_op.drop_index("ix_access_log_person_ts")
        batch_op.create_index("ix_access_log_person_ts", ["person_id", "ts"], unique=False)
        batch_op.create_index("ix_access_log_gate_ts", ["building", "gate_id", "ts"], unique=False)
