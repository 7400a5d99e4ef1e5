"""Silences in SQL: maintenance windows stored and read back, and applied to open alerts.

What a silence means is decided by the lifecycle (``Silence``, ``refresh_silence``); this
module keeps the windows in their table and re-evaluates the open alerts they may cover.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.alerts import lifecycle, repository
from gateway.alerts.lifecycle import AlertRecord, Silence
from gateway.alerts.originators import originator_matches
from gateway.alerts.repository import NotFoundError
from gateway.alerts.types import AlertType
from gateway.alerts.views import AlertView, SilenceView
from gateway.attributes import from_attributes
from gateway.db.schema import AlertRow, SilenceRow


def silence_of(row: SilenceRow) -> Silence:
    """The domain value of a stored silence."""
    return from_attributes(Silence, row, types=frozenset(AlertType(t) for t in row.types or []))


def silence_view(row: SilenceRow, now: datetime) -> SilenceView:
    """The API view of a stored silence (``active``: in force at ``now``)."""
    return from_attributes(
        SilenceView,
        row,
        types=[AlertType(t) for t in row.types or []],
        active=row.starts_at <= now < row.ends_at,
    )


def add_silence(session: Session, silence: Silence, now: datetime) -> SilenceRow:
    """Store a new silence (flushed, so it has its id)."""
    row = SilenceRow(
        originator=silence.originator,
        types=sorted(t.value for t in silence.types),
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        reason=silence.reason[:300],
        created_by=silence.created_by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def silence_row(session: Session, silence_id: int) -> SilenceRow:
    """One stored silence; NotFoundError when there is none."""
    row = session.get(SilenceRow, silence_id)
    if row is None:
        raise NotFoundError(f"no silence {silence_id}")
    return row


def list_rows(session: Session, now: datetime, *, include_past: bool) -> list[SilenceRow]:
    """Current and future silences (and past ones when asked), newest end first."""
    query = select(SilenceRow).order_by(SilenceRow.ends_at.desc(), SilenceRow.id.desc())
    if not include_past:
        query = query.where(SilenceRow.ends_at > now)
    return list(session.scalars(query))


def silences_between(session: Session, start: datetime, end: datetime) -> list[Silence]:
    """The silences in force at some moment of [start, end]."""
    rows = session.scalars(
        select(SilenceRow).where(SilenceRow.starts_at <= end, SilenceRow.ends_at > start)
    )
    return [silence_of(r) for r in rows]


def refresh_open_alerts(
    session: Session, now: datetime, changes: list[tuple[str, AlertRecord]] | None = None
) -> list[AlertView]:
    """Silence or unsilence open alerts according to the silences in force now.

    ``changes`` (when given) collects (action, record) of each alert changed.
    """
    silences = silences_between(session, now, now)
    query = select(AlertRow).where(AlertRow.state.in_(repository.OPEN_STATES))
    if not silences:
        query = query.where(AlertRow.silenced.is_(True))
    candidates = session.scalars(query)
    changed: list[AlertView] = []
    for row in candidates:
        rec = repository.record_of(row)
        if not row.silenced and not any(
            originator_matches(s.originator, rec.originator) for s in silences
        ):
            continue
        after = lifecycle.refresh_silence(rec, silences, now)
        if after is None:
            continue
        repository.store(row, after, now)
        action = "silenced" if after.silenced else "unsilenced"
        repository.add_history(session, row.id, action, None, "", now)
        if changes is not None:
            changes.append((action, after))
        changed.append(repository.view_of(row))
    return changed
