"""Deduplication by event id: delivery is at-least-once, each event is stored once.

Seen ids are kept in ``seen_events`` for ``dedup_days`` and pruned by the hourly upkeep.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from contracts.models import (
    AccessEvent,
    CommandResult,
    DeviceState,
    DoorEvent,
    GalleryAck,
    SecurityEvent,
)
from gateway.db.schema import SeenEvent
from gateway.ingest.batch import BatchOutcome
from gateway.ingest.store import BatchWork
from gateway.ingest.validate import Valid

DEDUPED = (AccessEvent, DoorEvent, DeviceState, GalleryAck, CommandResult, SecurityEvent)
"""The messages that carry an event id (the others are state, telemetry or chatter)."""


def drop_duplicates(work: BatchWork, valid: list[Valid], out: BatchOutcome) -> list[Valid]:
    """The messages not seen before (in earlier batches or earlier in this one); their ids are
    added to the batch's seen rows and the duplicates counted in ``out``."""
    ids = [m.event_id for _, _, m in valid if isinstance(m, DEDUPED)]
    seen: set[str] = set()
    for start in range(0, len(ids), 500):
        seen.update(
            work.session.scalars(
                select(SeenEvent.event_id).where(SeenEvent.event_id.in_(ids[start : start + 500]))
            )
        )
    fresh = []
    for item in valid:
        model = item[2]
        if isinstance(model, DEDUPED):
            event_id: str = model.event_id
            if event_id in seen:
                out.duplicates += 1
                continue
            seen.add(event_id)
            work.seen.append({"event_id": event_id, "received_at": work.now})
        fresh.append(item)
    return fresh


def prune_seen(session: Session, older_than: datetime) -> int:
    """Forget event ids older than the dedup horizon; returns how many."""
    result: Any = session.execute(delete(SeenEvent).where(SeenEvent.received_at < older_than))
    return int(result.rowcount or 0)


def dedup_horizon(now: datetime, days: float) -> datetime:
    """The oldest received_at still remembered for dedup."""
    return now - timedelta(days=days)
