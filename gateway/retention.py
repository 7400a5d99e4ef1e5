"""What the hourly upkeep deletes from the tables that grow with every message.

The access log is kept: its hash chain is the audit evidence (docs/privacy.md). Device state
history, late returns past the welfare window and cleared alerts (with their history and
notices) go after their retention.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from gateway.config import GatewayConfig
from gateway.db.schema import AlertRow, DeviceStateRecord, LateReturn


def prune_history(session: Session, config: GatewayConfig, now: datetime) -> dict[str, int]:
    """Delete rows past their retention in the caller's transaction; the count per table."""
    retention = config.retention
    late_cutoff = now - timedelta(days=config.welfare.late_returns_days + 1)
    cuts: list[tuple[str, Any]] = [
        (
            "device_states",
            delete(DeviceStateRecord).where(
                DeviceStateRecord.ts < now - timedelta(days=retention.device_states_days)
            ),
        ),
        ("late_returns", delete(LateReturn).where(LateReturn.ts < late_cutoff)),
        (
            "alerts",
            delete(AlertRow).where(
                AlertRow.state == "cleared",
                AlertRow.cleared_at < now - timedelta(days=retention.cleared_alerts_days),
            ),
        ),
    ]
    counts: dict[str, int] = {}
    for table, statement in cuts:
        result: Any = session.execute(statement)  # a CursorResult: DELETE has a rowcount
        counts[table] = int(result.rowcount or 0)
    return counts
