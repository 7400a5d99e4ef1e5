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


def drop_duplicates(
    work: BatchWork, valid: list[Valid], out: BatchOutcome, replica: str
) -> tuple[list[Valid], list[Valid]]:
    """The messages not seen before (in earlier batches or earlier in this one), and the
    duplicates this gateway (``replica``, its MQTT client id) stored itself in an earlier
    batch: redeliveries after it was stopped between a commit and the acknowledgement, whose
    time-series points may never have reached the writers. Fresh ids are added to the batch's
    seen rows; every duplicate is counted in ``out``."""
    ids = [m.event_id for _, _, m in valid if isinstance(m, DEDUPED)]
    seen: dict[str, str | None] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(SeenEvent.event_id, SeenEvent.stored_by).where(SeenEvent.event_id.in_(chunk))
        seen.update((event_id, stored_by) for event_id, stored_by in work.session.execute(query))
    fresh: list[Valid] = []
    mine: list[Valid] = []
    in_batch: set[str] = set()
    for item in valid:
        model = item[2]
        if isinstance(model, DEDUPED):
            event_id: str = model.event_id
            if event_id in seen or event_id in in_batch:
                out.duplicates += 1
                if seen.get(event_id) == replica and event_id not in in_batch:
                    mine.append(item)
                    in_batch.add(event_id)
                continue
            in_batch.add(event_id)
            work.seen.append({"event_id": event_id, "received_at": work.now, "stored_by": replica})
        fresh.append(item)
    return fresh, mine


def prune_seen(session: Session, older_than: datetime) -> int:
    """Forget event ids older than the dedup horizon; returns how many."""
    result: Any = session.execute(delete(SeenEvent).where(SeenEvent.received_at < older_than))
    return int(result.rowcount or 0)


def dedup_horizon(now: datetime, days: float) -> datetime:
    """The oldest received_at still remembered for dedup."""
    return now - timedelta(days=days)
