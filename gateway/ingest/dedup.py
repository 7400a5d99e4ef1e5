"""Deduplication by event id: delivery is at-least-once, each event is stored once.

Seen ids are kept in ``seen_events`` for ``dedup_days`` and pruned by the hourly upkeep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class Sorted:
    """A batch's valid messages by what dedup found."""

    fresh: list[Valid] = field(default_factory=list)  # not seen before: to store
    # Seen, stored by this gateway in an earlier batch: redeliveries after it was stopped
    # between a commit and the acknowledgement, whose points may never have been written.
    mine: list[Valid] = field(default_factory=list)
    # Seen, stored by another replica (or before stored_by was kept).
    others: list[Valid] = field(default_factory=list)


def drop_duplicates(work: BatchWork, valid: list[Valid], out: BatchOutcome, replica: str) -> Sorted:
    """Sort a batch's messages into fresh ones and earlier batches' duplicates, stored by this
    gateway (``replica``, its MQTT client id) or by another. Fresh ids are added to the batch's
    seen rows; every duplicate, also one repeated within the batch, is counted in ``out``."""
    ids = [m.event_id for _, _, m in valid if isinstance(m, DEDUPED)]
    seen: dict[str, str | None] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(SeenEvent.event_id, SeenEvent.stored_by).where(SeenEvent.event_id.in_(chunk))
        seen.update((event_id, stored_by) for event_id, stored_by in work.session.execute(query))
    result = Sorted()
    in_batch: set[str] = set()
    for item in valid:
        model = item[2]
        if isinstance(model, DEDUPED):
            event_id: str = model.event_id
            if event_id in seen or event_id in in_batch:
                out.duplicates += 1
                if event_id not in in_batch:
                    in_batch.add(event_id)
                    mine = seen[event_id] == replica
                    (result.mine if mine else result.others).append(item)
                continue
            in_batch.add(event_id)
            work.seen.append({"event_id": event_id, "received_at": work.now, "stored_by": replica})
        result.fresh.append(item)
    return result


def prune_seen(session: Session, older_than: datetime) -> int:
    """Forget event ids older than the dedup horizon; returns how many."""
    result: Any = session.execute(delete(SeenEvent).where(SeenEvent.received_at < older_than))
    return int(result.rowcount or 0)


def dedup_horizon(now: datetime, days: float) -> datetime:
    """The oldest received_at still remembered for dedup."""
    return now - timedelta(days=days)
