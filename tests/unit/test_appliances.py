"""What the service-room board shows, and when a student's watch fires (pure rules)."""

from __future__ import annotations

import pytest

from gateway.domain.appliances import BoardStatus, WatchKind, board_status, watch_fires


@pytest.mark.parametrize(
    ("online", "faults", "status", "expected"),
    [
        (False, ["door_open"], "running", "offline"),
        (True, ["door_open"], "running", "fault"),
        (True, [], "running", "running"),
        (True, [], "heating", "running"),
        (True, [], "finished", "finished"),
        (True, [], "idle", "free"),
        (True, [], "standby", "free"),
        (True, [], "mystery", "unknown"),
    ],
)
def test_offline_and_fault_win_over_the_appliances_own_status(
    online: bool, faults: list[str], status: str, expected: BoardStatus
) -> None:
    assert board_status(online, faults, status) == expected


@pytest.mark.parametrize(
    ("kind", "before", "after", "fires"),
    [
        ("finished", "running", "finished", True),
        ("finished", "running", "free", True),  # a dispenser has no finished state
        ("finished", "fault", "finished", True),
        ("finished", "finished", "finished", False),  # no change: nothing new to tell
        ("finished", "offline", "free", False),  # back online idle: no cycle ended
        ("finished", "running", "fault", False),
        ("free", "running", "free", True),
        ("free", "finished", "free", True),
        ("free", None, "free", True),  # a new machine that reports free
        ("free", "free", "free", False),
        ("free", "running", "finished", False),  # someone's laundry is still inside
    ],
)
def test_a_watch_fires_on_the_change_it_waits_for(
    kind: WatchKind, before: BoardStatus | None, after: BoardStatus, fires: bool
) -> None:
    assert watch_fires(kind, before, after) is fires
