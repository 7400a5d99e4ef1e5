"""Door-contact state machine rules and contact payload parsing, driven with plain values."""

from __future__ import annotations

import pytest

from edge.gate.door_logic import DoorEventOut, DoorMonitor, parse_contact_payload


def kinds(events: list[DoorEventOut]) -> list[str]:
    return [e.kind for e in events]


def monitor(held_open_after_s: float = 30.0, grace_s: float = 1.0) -> DoorMonitor:
    return DoorMonitor(held_open_after_s=held_open_after_s, grace_s=grace_s, exit_window_s=5.0)


# --- forced open and authorisation windows -------------------------------------------------


def test_opening_without_authorisation_is_forced() -> None:
    events = monitor().contact(True, 100.0)
    assert events == [DoorEventOut("opened", 100.0, None), DoorEventOut("forced_open", 100.0)]


@pytest.mark.parametrize(
    ("open_at", "expected"),
    [
        (10.0, ["opened"]),  # at the moment of the unlock
        (12.0, ["opened"]),  # inside the unlock window
        (15.0, ["opened"]),  # at `until`
        (15.5, ["opened"]),  # inside the grace period
        (16.0, ["opened"]),  # at until + grace (inclusive)
        (16.01, ["opened", "forced_open"]),  # just past the grace period
        (60.0, ["opened", "forced_open"]),  # long after
    ],
)
def test_unlock_authorises_openings_until_the_window_plus_grace(
    open_at: float, expected: list[str]
) -> None:
    m = monitor(grace_s=1.0)
    m.unlocked(10.0, until=15.0)
    assert kinds(m.contact(True, open_at)) == expected


@pytest.mark.parametrize(
    ("grace_s", "open_at", "expected"),
    [
        (0.0, 15.0, ["opened"]),
        (0.0, 15.001, ["opened", "forced_open"]),
        (3.0, 17.9, ["opened"]),
        (3.0, 18.1, ["opened", "forced_open"]),
    ],
)
def test_grace_period_is_configurable(grace_s: float, open_at: float, expected: list[str]) -> None:
    m = monitor(grace_s=grace_s)
    m.unlocked(10.0, until=15.0)
    assert kinds(m.contact(True, open_at)) == expected


@pytest.mark.parametrize(
    ("open_at", "expected"),
    [
        (20.0, ["opened"]),
        (25.0, ["opened"]),  # 5 s exit window
        (26.0, ["opened"]),  # + 1 s grace
        (26.5, ["opened", "forced_open"]),
    ],
)
def test_exit_request_authorises_an_opening_like_an_unlock(
    open_at: float, expected: list[str]
) -> None:
    m = monitor(grace_s=1.0)
    m.exit_request(20.0)
    assert kinds(m.contact(True, open_at)) == expected


def test_a_later_unlock_extends_the_window_and_an_earlier_one_does_not_shrink_it() -> None:
    m = monitor(grace_s=0.0)
    m.unlocked(0.0, until=10.0)
    m.unlocked(1.0, until=5.0)  # shorter grant must not cut the first one short
    assert kinds(m.contact(True, 9.0)) == ["opened"]
    m.contact(False, 9.5)
    m.unlocked(9.5, until=20.0)
    assert kinds(m.contact(True, 19.0)) == ["opened"]


def test_authorisation_covers_several_openings_within_its_window() -> None:
    m = monitor()
    m.unlocked(0.0, until=10.0)
    assert kinds(m.contact(True, 1.0)) == ["opened"]
    assert kinds(m.contact(False, 2.0)) == ["closed"]
    assert kinds(m.contact(True, 3.0)) == ["opened"]


def test_opening_after_an_expired_unlock_is_forced() -> None:
    m = monitor(grace_s=1.0)
    m.unlocked(0.0, until=5.0)
    m.contact(True, 1.0)
    m.contact(False, 2.0)
    assert kinds(m.contact(True, 30.0)) == ["opened", "forced_open"]


def test_early_relock_ends_the_window_after_grace() -> None:
    m = monitor(grace_s=1.0)
    m.unlocked(0.0, until=10.0)
    m.locked(2.0)
    assert kinds(m.contact(True, 2.5)) == ["opened"]
    m.contact(False, 2.6)
    assert kinds(m.contact(True, 3.5)) == ["opened", "forced_open"]


def test_unlock_window_ending_before_it_starts_is_rejected() -> None:
    with pytest.raises(ValueError, match="until"):
        monitor().unlocked(10.0, until=9.0)


@pytest.mark.parametrize(
    ("held_open_after_s", "grace_s"),
    [(0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0), (10.0, -0.5), (10.0, float("inf"))],
)
def test_invalid_monitor_settings_are_rejected(held_open_after_s: float, grace_s: float) -> None:
    with pytest.raises(ValueError):
        DoorMonitor(held_open_after_s, grace_s)


# --- open / close and duplicates -----------------------------------------------------------


def test_close_reports_how_long_the_door_was_open() -> None:
    m = monitor()
    m.unlocked(0.0, until=5.0)
    m.contact(True, 1.0)
    assert m.is_open
    assert m.contact(False, 4.5) == [DoorEventOut("closed", 4.5, 3.5)]
    assert not m.is_open


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([(False, 1.0)], []),  # door is assumed closed at start
        ([(False, 1.0), (False, 2.0)], []),
        ([(True, 1.0), (True, 2.0)], ["opened", "forced_open"]),
        ([(True, 1.0), (True, 2.0), (True, 3.0)], ["opened", "forced_open"]),
        ([(True, 1.0), (False, 2.0), (False, 3.0)], ["opened", "forced_open", "closed"]),
        (
            [(True, 1.0), (False, 2.0), (True, 3.0)],
            ["opened", "forced_open", "closed", "opened", "forced_open"],
        ),
    ],
)
def test_repeated_same_state_reports_produce_nothing(
    reports: list[tuple[bool, float]], expected: list[str]
) -> None:
    m = monitor()
    out: list[DoorEventOut] = []
    for is_open, at in reports:
        out += m.contact(is_open, at)
    assert kinds(out) == expected


def test_closed_duration_is_never_negative_when_reports_arrive_out_of_order() -> None:
    m = monitor()
    m.contact(True, 10.0)
    assert m.contact(False, 9.0) == [DoorEventOut("closed", 9.0, 0.0)]


# --- held open -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tick_at", "expected"),
    [
        (0.0, []),
        (5.0, []),
        (10.0, []),  # exactly at the limit: not yet "longer than"
        (10.01, ["held_open"]),
        (100.0, ["held_open"]),
    ],
)
def test_held_open_fires_when_open_longer_than_the_limit(
    tick_at: float, expected: list[str]
) -> None:
    m = monitor(held_open_after_s=10.0)
    m.unlocked(0.0, until=5.0)
    m.contact(True, 0.0)
    assert kinds(m.tick(tick_at)) == expected


def test_held_open_fires_once_per_opening_and_carries_the_open_time() -> None:
    m = monitor(held_open_after_s=10.0)
    m.contact(True, 0.0)
    assert m.tick(11.0) == [DoorEventOut("held_open", 11.0, 11.0)]
    assert m.tick(12.0) == []
    assert m.tick(500.0) == []


def test_held_open_is_rearmed_by_closing() -> None:
    m = monitor(held_open_after_s=10.0)
    m.contact(True, 0.0)
    assert kinds(m.tick(11.0)) == ["held_open"]
    assert kinds(m.contact(False, 12.0)) == ["closed"]
    m.contact(True, 20.0)
    assert m.tick(25.0) == []
    assert kinds(m.tick(30.5)) == ["held_open"]


def test_duplicate_open_report_does_not_restart_the_held_open_timer() -> None:
    m = monitor(held_open_after_s=10.0)
    m.contact(True, 0.0)
    m.contact(True, 8.0)
    assert kinds(m.tick(10.5)) == ["held_open"]


@pytest.mark.parametrize("tick_at", [0.0, 50.0, 1000.0])
def test_tick_while_closed_gives_nothing(tick_at: float) -> None:
    m = monitor(held_open_after_s=10.0)
    assert m.tick(tick_at) == []
    m.contact(True, 0.0)
    m.contact(False, 1.0)
    assert m.tick(tick_at + 100.0) == []


def test_authorised_door_left_open_still_reports_held_open() -> None:
    m = monitor(held_open_after_s=10.0)
    m.unlocked(0.0, until=5.0)
    assert kinds(m.contact(True, 1.0)) == ["opened"]
    assert kinds(m.tick(11.5)) == ["held_open"]


# --- contact payload parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "is_open"),
    [
        (b"OPEN", True),
        (b"CLOSED", False),
        (b"open", True),
        (b"Closed", False),
        (b"ON", True),
        (b"OFF", False),
        (b"on", True),
        (b"off", False),
        (b"1", True),
        (b"0", False),
        (b"true", True),
        (b"false", False),
        (b"TRUE", True),
        (b"  OPEN\n", True),
        (b'{"contact": false}', True),  # Zigbee2MQTT: contact false = magnet away = open
        (b'{"contact": true}', False),
        (b'{"contact": true, "battery": 97, "linkquality": 120}', False),
        (b'{"state": "open"}', True),
        (b'{"state": "closed"}', False),
        (b'{"state": "OPEN"}', True),
        (b' {"state":"closed"} ', False),
    ],
)
def test_contact_payload_variants(payload: bytes, is_open: bool) -> None:
    assert parse_contact_payload(payload) is is_open


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"   ",
        b"ajar",
        b"2",
        b"yes",
        b"{",
        b"[]",
        b'"OPEN"',
        b"null",
        b"{}",
        b'{"contact": "false"}',
        b'{"contact": 0}',
        b'{"contact": null}',
        b'{"state": "ON"}',
        b'{"state": 1}',
        b'{"battery": 97}',
        b"\xff\xfe",
    ],
)
def test_unrecognised_contact_payloads_are_rejected_naming_the_payload(payload: bytes) -> None:
    with pytest.raises(ValueError, match="contact payload") as info:
        parse_contact_payload(payload)
    assert repr(payload) in str(info.value)


def test_rejected_long_payload_is_truncated_to_64_bytes() -> None:
    payload = b"x" * 60 + b"TAIL" + b"y" * 1000
    with pytest.raises(ValueError) as info:
        parse_contact_payload(payload)
    message = str(info.value)
    assert repr(payload[:64]) + "..." in message
    assert "yyyy" not in message
