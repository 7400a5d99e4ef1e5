"""Students' "notify me" watches: made on the student page, fired by the ingest.

A watch fires inside the ingest transaction that stores the state change (``fire_watches``):
the watch row is marked with a conditional update, so of two replicas storing states of the
same machine only one fires it, and the notices to the configured channels go into the
durable outbox in the same commit. What fired is returned for the live page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from gateway.db.schema import Device, Watch
from gateway.domain.appliances import BoardStatus, WatchKind, board_status, watch_fires
from gateway.notify.messages import watch_message
from gateway.notify.outbox import add_notice
from gateway.notify.routing import PlannedNotice

MAX_OPEN_WATCHES = 10  # per student: enough for every machine they could be waiting on
STUDENT_ROUTE = "students"  # the notices table's route for watch notices


class WatchError(ValueError):
    """A watch that cannot be made (the message says why)."""


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """What a new watch waits for: one machine finishing, or a kind of machine becoming free."""

    kind: WatchKind
    building: str
    device_key: str | None = None
    room: str | None = None
    device_kind: str | None = None


def open_watch_filter() -> Any:
    """Watches neither fired nor cancelled."""
    return and_(Watch.fired_at.is_(None), Watch.cancelled_at.is_(None))


def watches_of(session: Session, person_id: str, *, fired_since: datetime) -> list[Watch]:
    """A student's open watches and those fired or cancelled since ``fired_since``, newest first."""
    return list(
        session.scalars(
            select(Watch)
            .where(
                Watch.person_id == person_id,
                or_(
                    open_watch_filter(),
                    Watch.fired_at >= fired_since,
                    Watch.cancelled_at >= fired_since,
                ),
            )
            .order_by(Watch.id.desc())
        )
    )


def add_watch(session: Session, person_id: str, target: WatchTarget, now: datetime) -> Watch:
    """A new open watch; the same open watch again is returned as it is (not made twice)."""
    same = session.scalars(
        select(Watch).where(
            Watch.person_id == person_id,
            open_watch_filter(),
            Watch.kind == target.kind,
            _equal(Watch.device_key, target.device_key),
            Watch.building == target.building,
            _equal(Watch.room, target.room),
            _equal(Watch.device_kind, target.device_kind),
        )
    ).first()
    if same is not None:
        return same
    count = len(
        session.scalars(
            select(Watch.id).where(Watch.person_id == person_id, open_watch_filter())
        ).all()
    )
    if count >= MAX_OPEN_WATCHES:
        raise WatchError(
            f"you already have {count} open watches (at most {MAX_OPEN_WATCHES}); cancel one first"
        )
    watch = Watch(
        person_id=person_id,
        kind=target.kind,
        device_key=target.device_key,
        building=target.building,
        room=target.room,
        device_kind=target.device_kind,
        created_at=now,
    )
    session.add(watch)
    session.flush()
    return watch


def _equal(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


def cancel_watch(session: Session, person_id: str, watch_id: int, now: datetime) -> bool:
    """Cancel one of the student's open watches; False when there is no such open watch."""
    result: Any = session.execute(
        update(Watch)
        .where(Watch.id == watch_id, Watch.person_id == person_id, open_watch_filter())
        .values(cancelled_at=now)
    )
    return bool(result.rowcount)


def device_place(device: Device) -> dict[str, str]:
    """Which machine, where: what a watch notice names."""
    return {
        "device_key": device.device_key,
        "building": device.building,
        "room": device.room,
        "device_id": device.device_id,
        "kind": device.kind,
    }


def fire_watches(
    session: Session,
    device: Device,
    before: BoardStatus | None,
    now: datetime,
    channels: Sequence[str],
) -> list[dict[str, Any]]:
    """Fire the open watches this state change of ``device`` satisfies (in the caller's
    transaction): mark them, queue a notice per channel, return one page message per watch."""
    after = board_status(device.online, list(device.faults), device.status)
    wanted = []
    if watch_fires("finished", before, after):
        wanted.append(and_(Watch.kind == "finished", Watch.device_key == device.device_key))
    if watch_fires("free", before, after):
        wanted.append(
            and_(
                Watch.kind == "free",
                Watch.building == device.building,
                Watch.device_kind == device.kind,
                or_(Watch.room.is_(None), Watch.room == device.room),
            )
        )
    if not wanted:
        return []
    candidates = session.execute(
        select(Watch.id, Watch.person_id, Watch.kind)
        .where(or_(*wanted), open_watch_filter())
        .order_by(Watch.id)
    ).all()
    fired: list[dict[str, Any]] = []
    for watch_id, person_id, kind in candidates:
        result: Any = session.execute(
            update(Watch)
            .where(Watch.id == watch_id, open_watch_filter())
            .values(fired_at=now, fired_device_key=device.device_key)
        )
        if result.rowcount != 1:
            continue  # cancelled, or fired by another replica, meanwhile
        where = device_place(device)
        message = watch_message(kind, person_id, watch_id, where, now)
        for channel in channels:
            plan = PlannedNotice(
                STUDENT_ROUTE, channel, "watch", now, dedup_key=f"watch:{watch_id}:{channel}"
            )
            add_notice(session, None, plan, message, now)
        fired.append(
            {
                "type": "notice",
                "person_id": person_id,
                "watch_id": watch_id,
                "watch_kind": kind,
                "title": message.title,
                "device": where,
                "at": now.isoformat(),
            }
        )
    return fired
