"""Welfare rules: not back by curfew, no exit for days, repeated late returns, and how the
warnings become one alert per person and kind."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.alerts.lifecycle import AlertRecord, apply_signal, clear
from gateway.alerts.rules.welfare import (
    WelfareConfig,
    WelfareKind,
    WelfareWarning,
    evaluate_welfare,
    last_curfew,
    reconcile_welfare,
    welfare_originator,
)
from gateway.alerts.types import AlertType, Severity
from gateway.domain.occupancy import Presence

SHANGHAI = "Asia/Shanghai"  # UTC+8 all year
NEW_YORK = "America/New_York"  # DST: 2024-03-10 02:00 -> 03:00, 2024-11-03 02:00 -> 01:00
CONFIG = WelfareConfig()  # Shanghai, curfew 23:00, grace 30 min


def local(day: str, hhmm: str, tz: str = SHANGHAI, second: int = 0) -> datetime:
    """A UTC instant given as a local wall-clock time ("2024-03-06", "23:00")."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    wall = datetime.combine(date.fromisoformat(day), time(hour, minute, second), ZoneInfo(tz))
    return wall.astimezone(UTC)


def out(at: datetime, person_id: str = "S001", **fields: Any) -> Presence:
    values: dict[str, Any] = {"building": "B1", "gate_id": "main-out", "irregular": False}
    values.update(fields)
    return Presence(person_id=person_id, inside=False, since=at, **values)


def inside(at: datetime, person_id: str = "S001", **fields: Any) -> Presence:
    values: dict[str, Any] = {"building": "B1", "gate_id": "main-in", "irregular": False}
    values.update(fields)
    return Presence(person_id=person_id, inside=True, since=at, **values)


def kinds(warnings: list[WelfareWarning]) -> list[tuple[str, WelfareKind]]:
    return [(w.person_id, w.kind) for w in warnings]


def evaluate(
    presences: list[Presence],
    now: datetime,
    config: WelfareConfig = CONFIG,
    late: dict[str, list[datetime]] | None = None,
    last_seen: dict[str, datetime] | None = None,
) -> list[WelfareWarning]:
    return evaluate_welfare(presences, late or {}, config, now, last_seen=last_seen)


NOT_BACK = [("S001", WelfareKind.NOT_BACK_BY_CURFEW)]


# --- not back by curfew -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("23:29", []),  # grace not over yet
        ("23:30", NOT_BACK),  # curfew + grace, inclusive
        ("23:45", NOT_BACK),
    ],
)
def test_outside_at_curfew_and_still_out_after_the_grace_is_not_back(
    now: str, expected: list[tuple[str, WelfareKind]]
) -> None:
    presences = [out(local("2024-03-06", "20:00"))]
    assert kinds(evaluate(presences, local("2024-03-06", now))) == expected


def test_the_warning_says_when_and_where_they_left() -> None:
    [warning] = evaluate([out(local("2024-03-06", "20:00"))], local("2024-03-06", "23:45"))
    assert warning.since == local("2024-03-06", "20:00")
    assert warning.building == "B1"
    assert warning.severity is Severity.WARNING
    assert warning.detail["curfew_at"] == local("2024-03-06", "23:00").isoformat()
    assert warning.detail["deadline"] == local("2024-03-06", "23:30").isoformat()
    assert "Wed 20:00" in warning.title  # local time for the counsellor


@pytest.mark.parametrize(
    ("left", "second", "expected"),
    [
        ("22:59", 59, NOT_BACK),  # out when curfew began
        ("23:00", 0, []),  # left at curfew: was in when it began
        ("23:10", 0, []),  # left after curfew began: tonight is not "not back"
    ],
)
def test_only_someone_already_out_when_curfew_began_is_not_back(
    left: str, second: int, expected: list[tuple[str, WelfareKind]]
) -> None:
    presences = [out(local("2024-03-06", left, second=second))]
    assert kinds(evaluate(presences, local("2024-03-06", "23:45"))) == expected


def test_someone_who_left_after_curfew_is_reported_at_the_next_curfew() -> None:
    presences = [out(local("2024-03-06", "23:10"))]
    assert evaluate(presences, local("2024-03-07", "12:00")) == []
    assert kinds(evaluate(presences, local("2024-03-07", "23:30"))) == NOT_BACK


def test_someone_who_left_today_is_not_judged_by_yesterdays_curfew() -> None:
    presences = [out(local("2024-03-06", "14:00"))]
    assert evaluate(presences, local("2024-03-06", "18:00")) == []


def test_an_absence_of_several_nights_is_one_warning_instance() -> None:
    presences = [out(local("2024-03-06", "14:00"))]
    instances = {
        w.instance
        for now in (("2024-03-06", "23:40"), ("2024-03-07", "23:40"), ("2024-03-08", "12:00"))
        for w in evaluate(presences, local(*now))
    }
    assert instances == {local("2024-03-06", "14:00").isoformat()}


def test_someone_back_inside_is_not_warned() -> None:
    presences = [inside(local("2024-03-06", "22:00"))]
    assert evaluate(presences, local("2024-03-06", "23:45")) == []


def test_someone_inside_another_campus_building_is_not_missing() -> None:
    presences = [
        out(local("2024-03-06", "20:00")),
        inside(local("2024-03-06", "20:05"), building="B2"),
    ]
    assert kinds(evaluate(presences, local("2024-03-06", "23:45"))) == []


def test_the_latest_exit_decides_when_several_buildings_were_left() -> None:
    presences = [
        out(local("2024-03-06", "18:00")),
        out(local("2024-03-06", "23:20"), building="B2"),  # visited B2, left after curfew
    ]
    assert evaluate(presences, local("2024-03-06", "23:45")) == []


def test_an_irregular_exit_still_counts_and_is_shown() -> None:
    [warning] = evaluate(
        [out(local("2024-03-06", "20:00"), irregular=True)], local("2024-03-06", "23:45")
    )
    assert warning.detail["irregular"] is True


def test_last_seen_at_a_gate_is_reported_with_the_warning() -> None:
    seen = local("2024-03-06", "23:20")  # e.g. denied at the door after curfew
    [warning] = evaluate(
        [out(local("2024-03-06", "20:00"))], local("2024-03-06", "23:45"), last_seen={"S001": seen}
    )
    assert warning.detail["last_seen"] == seen.isoformat()


@pytest.mark.parametrize(
    ("left", "now", "expected"),
    [
        (("2024-03-06", "23:50"), ("2024-03-07", "00:44"), []),  # before 00:30 + 15 min
        (("2024-03-06", "23:50"), ("2024-03-07", "00:45"), NOT_BACK),
        (("2024-03-07", "00:40"), ("2024-03-07", "03:00"), []),  # left after the 00:30 curfew
    ],
)
def test_a_curfew_after_midnight_belongs_to_its_own_date(
    left: tuple[str, str], now: tuple[str, str], expected: list[tuple[str, WelfareKind]]
) -> None:
    config = WelfareConfig(curfew="00:30", grace_minutes=15)
    assert kinds(evaluate([out(local(*left))], local(*now), config)) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (("2024-03-07", "00:15"), []),  # 23:50 + 30 min grace runs past midnight
        (("2024-03-07", "00:20"), NOT_BACK),
    ],
)
def test_a_grace_period_that_crosses_midnight(
    now: tuple[str, str], expected: list[tuple[str, WelfareKind]]
) -> None:
    config = WelfareConfig(curfew="23:50", grace_minutes=30)
    assert kinds(evaluate([out(local("2024-03-06", "22:00"))], local(*now), config)) == expected


@pytest.mark.parametrize(
    ("tz", "curfew", "now", "expected"),
    [
        # No DST: 23:00 Shanghai is 15:00 UTC every day.
        (
            SHANGHAI,
            "23:00",
            datetime(2024, 3, 10, 16, tzinfo=UTC),
            datetime(2024, 3, 10, 15, tzinfo=UTC),
        ),
        (
            SHANGHAI,
            "23:00",
            datetime(2024, 11, 3, 16, tzinfo=UTC),
            datetime(2024, 11, 3, 15, tzinfo=UTC),
        ),
        # New York: EST (UTC-5) before 2024-03-10, EDT (UTC-4) from that day.
        (
            NEW_YORK,
            "23:00",
            datetime(2024, 3, 10, 5, tzinfo=UTC),
            datetime(2024, 3, 10, 4, tzinfo=UTC),
        ),
        (
            NEW_YORK,
            "23:00",
            datetime(2024, 3, 11, 4, tzinfo=UTC),
            datetime(2024, 3, 11, 3, tzinfo=UTC),
        ),
        # A curfew inside the spring-forward gap takes the offset before the change.
        (
            NEW_YORK,
            "02:30",
            datetime(2024, 3, 10, 9, tzinfo=UTC),
            datetime(2024, 3, 10, 7, 30, tzinfo=UTC),
        ),
        # An ambiguous curfew on the fall-back night is its first occurrence (EDT).
        (
            NEW_YORK,
            "01:30",
            datetime(2024, 11, 3, 7, tzinfo=UTC),
            datetime(2024, 11, 3, 5, 30, tzinfo=UTC),
        ),
    ],
)
def test_each_days_curfew_is_its_local_wall_clock_time(
    tz: str, curfew: str, now: datetime, expected: datetime
) -> None:
    config = WelfareConfig(timezone=tz, curfew=curfew, grace_minutes=30)
    assert last_curfew(config, now) == expected


@pytest.mark.parametrize(("now", "expected"), [("23:29", []), ("23:31", NOT_BACK)])
def test_not_back_by_curfew_follows_daylight_saving_time(
    now: str, expected: list[tuple[str, WelfareKind]]
) -> None:
    config = WelfareConfig(timezone=NEW_YORK, curfew="23:00", grace_minutes=30)
    presences = [out(local("2024-03-10", "20:00", NEW_YORK))]  # first evening of EDT
    assert kinds(evaluate(presences, local("2024-03-10", now, NEW_YORK), config)) == expected


# --- no exit ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "warned"), [(71, False), (72, False), (72.01, True), (100, True)]
)
def test_inside_longer_than_no_exit_hours_is_warned(hours: float, warned: bool) -> None:
    now = local("2024-03-10", "12:00")
    warnings = evaluate([inside(now - timedelta(hours=hours))], now)
    assert kinds(warnings) == ([("S001", WelfareKind.NO_EXIT)] if warned else [])


def test_recent_activity_at_a_gate_resets_no_exit() -> None:
    now = local("2024-03-10", "12:00")
    entered = now - timedelta(hours=100)
    assert evaluate([inside(entered)], now, last_seen={"S001": now - timedelta(hours=1)}) == []
    [warning] = evaluate(
        [inside(entered)], now, last_seen={"S001": now - timedelta(hours=200)}
    )  # seen before the entry: the entry counts
    assert warning.since == entered
    assert warning.detail["hours"] == 100.0


def test_no_exit_hours_is_configurable() -> None:
    now = local("2024-03-10", "12:00")
    config = WelfareConfig(no_exit_hours=24)
    assert kinds(evaluate([inside(now - timedelta(hours=25))], now, config)) == [
        ("S001", WelfareKind.NO_EXIT)
    ]


# --- repeated late returns --------------------------------------------------------------------

NOW = local("2024-03-20", "12:00")


def days_ago(*days: float) -> list[datetime]:
    return [NOW - timedelta(days=d) for d in days]


@pytest.mark.parametrize(
    ("returns", "warned"),
    [
        (days_ago(1, 2, 3), True),  # exactly N
        (days_ago(1, 2), False),
        (days_ago(1, 2, 14), False),  # 14 days ago is outside the window
        (days_ago(1, 2, 13.99), True),
        (days_ago(1, 1, 2), False),  # the same return twice counts once
        (days_ago(1, 2, -1), False),  # a future-stamped return does not count yet
    ],
)
def test_n_late_returns_within_d_days_are_warned(returns: list[datetime], warned: bool) -> None:
    warnings = evaluate([], NOW, late={"S001": returns})
    assert kinds(warnings) == ([("S001", WelfareKind.REPEATED_LATE_RETURNS)] if warned else [])


def test_late_returns_warning_lists_the_returns_and_its_instance_is_the_latest() -> None:
    [warning] = evaluate([inside(NOW - timedelta(hours=2))], NOW, late={"S001": days_ago(3, 1, 2)})
    assert warning.since == NOW - timedelta(days=3)
    assert warning.instance == (NOW - timedelta(days=1)).isoformat()
    assert warning.detail["count"] == 3
    assert warning.severity is Severity.INFO
    assert warning.building == "B1"


# --- switches, severities, signals ------------------------------------------------------------


def test_warning_kinds_can_be_switched_off() -> None:
    now = local("2024-03-10", "23:45")
    config = WelfareConfig.model_validate(
        {"enabled": {"not_back_by_curfew": False, "no_exit": False, "repeated_late_returns": False}}
    )
    presences = [out(local("2024-03-10", "20:00")), inside(now - timedelta(days=9), "S002")]
    assert evaluate(presences, now, config, late={"S003": days_ago(1, 2, 3)}) == []


def test_warnings_are_sorted_by_person_and_severity_is_configurable() -> None:
    now = local("2024-03-10", "23:45")
    config = WelfareConfig.model_validate({"severity": {"no_exit": "major"}})
    presences = [inside(now - timedelta(days=9), "S002"), out(local("2024-03-10", "20:00"), "S001")]
    warnings = evaluate(presences, now, config)
    assert kinds(warnings) == [
        ("S001", WelfareKind.NOT_BACK_BY_CURFEW),
        ("S002", WelfareKind.NO_EXIT),
    ]
    assert warnings[1].severity is Severity.MAJOR


def test_a_warning_becomes_a_welfare_signal_per_person_and_kind() -> None:
    now = local("2024-03-06", "23:45")
    [warning] = evaluate([out(local("2024-03-06", "20:00"))], now)
    signal = warning.to_signal(now, site="campus")
    assert (signal.action, signal.type) == ("raise", AlertType.WELFARE)
    assert signal.originator == "person:S001/not_back_by_curfew"
    assert signal.originator == welfare_originator("S001", WelfareKind.NOT_BACK_BY_CURFEW)
    assert (signal.site, signal.building) == ("campus", "B1")
    assert signal.detail["instance"] == warning.instance
    assert signal.detail["kind"] == "not_back_by_curfew"
    assert signal.at == now


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate_welfare([], {}, CONFIG, datetime(2024, 3, 6))


# --- reconciliation with alerts ---------------------------------------------------------------

EVENING = local("2024-03-06", "23:45")


def the_warning() -> WelfareWarning:
    [warning] = evaluate([out(local("2024-03-06", "20:00"))], EVENING)
    return warning


def alert_for(warning: WelfareWarning, alert_id: int = 1) -> AlertRecord:
    rec = apply_signal(None, warning.to_signal(EVENING), (), EVENING)
    assert rec is not None
    return replace(rec, id=alert_id)


def test_reconcile_raises_a_warning_never_raised_before() -> None:
    [signal] = reconcile_welfare([the_warning()], {}, EVENING, site="campus")
    assert (signal.action, signal.originator, signal.site) == (
        "raise",
        "person:S001/not_back_by_curfew",
        "campus",
    )


def test_reconcile_leaves_an_open_alert_of_the_same_instance_alone() -> None:
    warning = the_warning()
    assert reconcile_welfare([warning], {warning.originator: alert_for(warning)}, EVENING) == []


def test_reconcile_does_not_raise_again_what_a_counsellor_cleared() -> None:
    warning = the_warning()
    done = clear(alert_for(warning), "counsellor", EVENING)
    assert reconcile_welfare([warning], {warning.originator: done}, EVENING) == []


def test_reconcile_raises_a_new_instance_after_a_cleared_one() -> None:
    warning = the_warning()
    done = clear(alert_for(warning), "counsellor", EVENING)
    newer = replace(warning, instance="2024-03-08T12:00:00+00:00")
    [signal] = reconcile_welfare([newer], {warning.originator: done}, EVENING)
    assert signal.action == "raise"


def test_reconcile_clears_an_open_alert_whose_warning_no_longer_holds() -> None:
    warning = the_warning()
    later = EVENING + timedelta(hours=1)
    [signal] = reconcile_welfare([], {warning.originator: alert_for(warning)}, later)
    assert (signal.action, signal.type, signal.originator) == (
        "clear",
        AlertType.WELFARE,
        warning.originator,
    )
    assert signal.at == later


def test_reconcile_ignores_closed_alerts_without_a_warning() -> None:
    warning = the_warning()
    done = clear(alert_for(warning), "counsellor", EVENING)
    assert reconcile_welfare([], {warning.originator: done}, EVENING) == []


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"curfew": "23:60"}, "out of range"),
        ({"curfew": "24:00"}, "out of range"),
        ({"curfew": "11pm"}, "HH:MM"),
        ({"curfew": "23:5"}, "HH:MM"),
        ({"curfew": 1380}, "quotes"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"grace_minutes": 721}, "less than or equal"),
        ({"no_exit_hours": 0}, "greater than 0"),
        ({"late_returns_count": 0}, "greater than or equal to 1"),
        ({"severity": {"no_exit": "urgent"}}, "unknown severity"),
        ({"enabled": {"missing_lunch": False}}, "missing_lunch"),
        ({"curfew_end": "06:00"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_welfare_config_is_rejected_with_a_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WelfareConfig.model_validate(fields)
