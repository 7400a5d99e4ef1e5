"""The hourly upkeep's retention on a real SQLite file: old device history, late returns past
the welfare window and long-cleared alerts go; the access log and everything recent stay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.alerts.types import AlertType
from gateway.db.schema import AccessRecord, AlertHistory, AlertRow, DeviceStateRecord, LateReturn
from gateway.retention import prune_history
from gateway.services import Services
from tests.gatewaykit import (
    FakeClock,
    add_access,
    add_device,
    close_services,
    make_services,
    signal,
)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path)
    yield services
    close_services(services)


def _count(services: Services, model: type) -> int:
    with services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_retention_deletes_what_is_past_it_and_keeps_the_rest(services: Services) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    now = clock()
    days = timedelta(days=1)
    add_device(
        services, "101", "w1", history=[(now - 91 * days, "running"), (now - 89 * days, "idle")]
    )
    with services.sessions.begin() as s:
        s.add(LateReturn(event_id="late-old", person_id="s1", ts=now - 16 * days))
        s.add(LateReturn(event_id="late-new", person_id="s1", ts=now - 13 * days))
    add_access(services, ts=now - 400 * days)
    old, recent, still_open = (
        signal(AlertType.DOOR_FORCED_OPEN, "gate:campus/b1/east", at=now - 400 * days),
        signal(AlertType.DOOR_FORCED_OPEN, "gate:campus/b1/west", at=now - 10 * days),
        signal(AlertType.DOOR_FORCED_OPEN, "gate:campus/b2/main", at=now - 400 * days),
    )
    for sig, cleared_days_ago in ((old, 366), (recent, 9), (still_open, None)):
        clock.now = sig.at
        [view] = services.alerts.apply([sig])
        if cleared_days_ago is not None:
            clock.now = now - cleared_days_ago * days
            services.alerts.clear(view.id, "guard-user")
    clock.now = now
    history_before = _count(services, AlertHistory)

    with services.sessions.begin() as s:
        counts = prune_history(s, services.config, now)

    assert counts == {"device_states": 1, "late_returns": 1, "alerts": 1}
    with services.sessions() as s:
        states = s.scalars(select(DeviceStateRecord.status)).all()
        late = s.scalars(select(LateReturn.event_id)).all()
        alerts = s.scalars(select(AlertRow.originator)).all()
    assert states == ["idle"]
    assert late == ["late-new"]
    assert sorted(alerts) == ["gate:campus/b1/west", "gate:campus/b2/main"]
    assert 0 < _count(services, AlertHistory) < history_before  # the old alert's went with it
    assert _count(services, AccessRecord) == 1  # the audit chain is kept
