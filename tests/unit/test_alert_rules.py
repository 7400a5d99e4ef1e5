"""Alert rules: which events raise or clear which alerts, driven with real contract models."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.models import AccessEvent, DeviceState, DoorEvent, Heartbeat
from gateway.alerts.originators import (
    bridge_originator,
    device_originator,
    gate_originator,
    originator_matches,
    person_originator,
)
from gateway.alerts.rules.config import RulesConfig
from gateway.alerts.rules.engine import AlertRules
from gateway.alerts.types import AlertType, Severity, Signal

T0 = datetime(2024, 3, 6, 4, 0, tzinfo=UTC)
GATE = gate_originator("campus", "B1", "main")
DEVICE = device_originator("campus", "B1", "laundry", "w1")
_ids = itertools.count(1)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def access(at: float = 0.0, **fields: Any) -> AccessEvent:
    values: dict[str, Any] = {
        "event_id": f"ev-{next(_ids):06d}",
        "ts": s(at),
        "producer": GATE,
        "site": "campus",
        "building": "B1",
        "gate_id": "main",
        "direction": "in",
        "decision": "granted",
        "method": "face",
        "person_id": "S001",
        "reason": "granted",
        "faces_in_view": 1,
    }
    values.update(fields)
    return AccessEvent(**values)


def unknown(at: float = 0.0, **fields: Any) -> AccessEvent:
    values: dict[str, Any] = {"decision": "denied", "person_id": None, "reason": "unknown_face"}
    values.update(fields)
    return access(at, **values)


def door(kind: str, at: float = 0.0, **fields: Any) -> DoorEvent:
    values: dict[str, Any] = {
        "event_id": f"door-{next(_ids):06d}",
        "ts": s(at),
        "producer": GATE,
        "site": "campus",
        "building": "B1",
        "gate_id": "main",
        "kind": kind,
    }
    values.update(fields)
    return DoorEvent(**values)


def heartbeat(at: float = 0.0, **fields: Any) -> Heartbeat:
    values: dict[str, Any] = {
        "event_id": f"hb-{next(_ids):06d}",
        "ts": s(at),
        "producer": GATE,
        "fps": 10.0,
        "source_healthy": True,
        "outbox_depth": 0,
        "gallery_version": 3,
        "face_path": "ok",
        "uptime_s": 100.0,
    }
    values.update(fields)
    return Heartbeat(**values)


def device_state(at: float = 0.0, **fields: Any) -> DeviceState:
    values: dict[str, Any] = {
        "event_id": f"ds-{next(_ids):06d}",
        "ts": s(at),
        "producer": bridge_originator("campus", "br1"),
        "site": "campus",
        "building": "B1",
        "room": "laundry",
        "device_id": "w1",
        "kind": "washer",
        "status": "running",
    }
    values.update(fields)
    return DeviceState(**values)


def rules(**config: Any) -> AlertRules:
    return AlertRules(RulesConfig(**config))


def raised(signals: list[Signal], alert_type: AlertType | None = None) -> list[Signal]:
    return [
        x for x in signals if x.action == "raise" and (alert_type is None or x.type is alert_type)
    ]


def cleared(signals: list[Signal], alert_type: AlertType | None = None) -> list[Signal]:
    return [
        x for x in signals if x.action == "clear" and (alert_type is None or x.type is alert_type)
    ]


def feed_access(engine: AlertRules, events: list[AccessEvent], now: float = 0.0) -> list[Signal]:
    out: list[Signal] = []
    for ev in events:
        out += engine.on_access(ev, max(s(now), ev.ts))
    return out


# --- originators ------------------------------------------------------------------------------


def test_originators_name_the_thing_with_its_full_path() -> None:
    assert GATE == "gate:campus/B1/main"
    assert DEVICE == "device:campus/B1/laundry/w1"
    assert person_originator("S001") == "person:S001"
    assert bridge_originator("campus", "br1") == "bridge:campus/br1"


@pytest.mark.parametrize(
    ("pattern", "originator", "expected"),
    [
        ("gate:campus/B1/main", "gate:campus/B1/main", True),  # exact
        ("gate:campus/B1", "gate:campus/B1/main", True),  # the whole building
        ("gate:campus/B1", "gate:campus/B10/main", False),  # not a segment boundary
        ("gate:campus/B1/", "gate:campus/B1/main", True),  # explicit trailing slash
        ("gate:", "gate:campus/B1/main", True),  # every gate
        ("person:S1", "person:S1/no_exit", True),
        ("person:S1", "person:S10", False),
        ("device:campus/B1", "gate:campus/B1/main", False),
    ],
)
def test_originator_patterns_match_whole_segments(
    pattern: str, originator: str, expected: bool
) -> None:
    assert originator_matches(pattern, originator) is expected


# --- unknown faces ----------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [1, 2, 3, 5])
def test_unknown_face_raises_at_exactly_n_in_the_window(threshold: int) -> None:
    engine = rules(unknown_face_count=threshold, unknown_face_window_s=300)
    before = feed_access(engine, [unknown(i * 10) for i in range(threshold - 1)])
    assert raised(before) == []
    at_threshold = feed_access(engine, [unknown(threshold * 10)])
    [signal] = raised(at_threshold, AlertType.UNKNOWN_FACE)
    assert signal.originator == GATE
    assert signal.detail["count"] == threshold
    assert signal.severity is Severity.WARNING
    assert signal.at == s(threshold * 10)


@pytest.mark.parametrize(
    ("last_at", "expected_raises"),
    [
        (300.0, 1),  # the third face exactly one window after the first: still inside
        (300.5, 0),  # half a second later: the first has left the window
    ],
)
def test_unknown_face_window_boundary_is_inclusive(last_at: float, expected_raises: int) -> None:
    engine = rules(unknown_face_count=3, unknown_face_window_s=300)
    signals = feed_access(engine, [unknown(0), unknown(150), unknown(last_at)])
    assert len(raised(signals, AlertType.UNKNOWN_FACE)) == expected_raises


def test_unknown_faces_are_counted_per_gate() -> None:
    engine = rules(unknown_face_count=2)
    signals = feed_access(engine, [unknown(0, gate_id="main"), unknown(1, gate_id="side")])
    assert raised(signals) == []
    signals = feed_access(engine, [unknown(2, gate_id="side")])
    [signal] = raised(signals)
    assert signal.originator == gate_originator("campus", "B1", "side")


def test_photos_held_up_to_a_gate_raise_a_presentation_attack_not_a_repeated_denial() -> None:
    """The gate's liveness refusals name whom the photo showed; the alert is the gate's."""
    engine = rules(presentation_attack_count=2, repeated_denial_count=2)
    attack = {"decision": "denied", "reason": "presentation_attack", "person_id": "S001"}
    assert raised(feed_access(engine, [access(0, **attack)])) == []
    [signal] = raised(feed_access(engine, [access(30, **attack)]))
    assert signal.type is AlertType.PRESENTATION_ATTACK and signal.originator == GATE
    assert signal.severity is Severity.MAJOR
    assert signal.detail["count"] == 2 and signal.detail["person_id"] == "S001"
    assert "S001" in signal.title


def test_a_redelivered_unknown_face_is_not_counted_twice() -> None:
    engine = rules(unknown_face_count=2)
    ev = unknown(0)
    assert raised(feed_access(engine, [ev, ev, ev])) == []


def test_a_late_unknown_face_within_the_window_completes_the_burst() -> None:
    engine = rules(unknown_face_count=3, unknown_face_window_s=300)
    signals = feed_access(engine, [unknown(100), unknown(200)], now=200)
    signals += engine.on_access(unknown(50), s(200))  # arrives last, happened first
    [signal] = raised(signals, AlertType.UNKNOWN_FACE)
    assert signal.detail["count"] == 3
    assert signal.at == s(50)


def test_each_unknown_face_beyond_the_threshold_raises_again_to_count_on_the_alert() -> None:
    engine = rules(unknown_face_count=2)
    signals = feed_access(engine, [unknown(0), unknown(10), unknown(20)])
    assert [x.detail["count"] for x in raised(signals)] == [2, 3]


def test_unknown_face_is_not_cleared_when_the_window_passes() -> None:
    """Documented choice: a burst of unknown faces is an incident a guard closes."""
    engine = rules(unknown_face_count=1, unknown_face_window_s=60)
    feed_access(engine, [unknown(0)])
    assert engine.tick(s(3600)) == []


def test_a_window_forgotten_after_idling_starts_counting_afresh() -> None:
    engine = rules(unknown_face_count=2, unknown_face_window_s=60)
    feed_access(engine, [unknown(0)])
    engine.tick(s(120))
    assert raised(feed_access(engine, [unknown(121)])) == []


@pytest.mark.parametrize(
    ("reason", "person_id", "counts"),
    [
        ("unknown_face", None, True),
        ("ambiguous_match", None, False),  # not by default
        ("unknown_card", None, False),
        ("wrong_pin", None, False),
    ],
)
def test_only_configured_denial_reasons_count_as_unknown_faces(
    reason: str, person_id: str | None, counts: bool
) -> None:
    engine = rules(unknown_face_count=1)
    signals = feed_access(engine, [unknown(0, reason=reason, person_id=person_id)])
    assert bool(raised(signals, AlertType.UNKNOWN_FACE)) is counts


def test_unknown_face_reasons_are_configurable() -> None:
    engine = rules(unknown_face_count=1, unknown_face_reasons=["unknown_face", "ambiguous_match"])
    signals = feed_access(engine, [unknown(0, reason="ambiguous_match")])
    assert raised(signals, AlertType.UNKNOWN_FACE)


def test_a_granted_face_does_not_count_as_unknown() -> None:
    engine = rules(unknown_face_count=1)
    assert raised(feed_access(engine, [access(0)]), AlertType.UNKNOWN_FACE) == []


def test_a_future_stamped_event_is_taken_at_the_gateway_time() -> None:
    engine = rules(unknown_face_count=1)
    [signal] = raised(engine.on_access(unknown(3600), s(0)))
    assert signal.at == s(0)


# --- repeated denials -------------------------------------------------------------------------


def test_repeated_denials_of_one_person_raise_per_person() -> None:
    engine = rules(repeated_denial_count=3, repeated_denial_window_s=600)
    denied = {"decision": "denied", "reason": "outside_schedule"}
    signals = feed_access(
        engine,
        [
            access(0, person_id="S1", **denied),
            access(10, person_id="S2", **denied),
            access(20, person_id="S1", **denied),
        ],
    )
    assert raised(signals) == []
    signals = feed_access(engine, [access(30, person_id="S1", method="pin", **denied)])
    [signal] = raised(signals, AlertType.REPEATED_DENIAL)
    assert signal.originator == "person:S1"
    assert signal.detail["count"] == 3
    assert signal.detail["last_reason"] == "outside_schedule"
    assert signal.detail["method"] == "pin"


def test_grants_in_between_do_not_reset_or_count_towards_repeated_denials() -> None:
    engine = rules(repeated_denial_count=2)
    denied = {"decision": "denied", "reason": "anti_passback"}
    signals = feed_access(engine, [access(0, **denied), access(10), access(20, **denied)])
    assert len(raised(signals, AlertType.REPEATED_DENIAL)) == 1


def test_denials_spread_wider_than_the_window_do_not_raise() -> None:
    engine = rules(repeated_denial_count=2, repeated_denial_window_s=60)
    denied = {"decision": "denied", "reason": "wrong_pin"}
    assert raised(feed_access(engine, [access(0, **denied), access(61, **denied)])) == []


# --- after curfew -----------------------------------------------------------------------------


def test_a_granted_entry_flagged_after_curfew_raises_an_info_alert_for_the_person() -> None:
    engine = rules()
    [signal] = raised(feed_access(engine, [access(0, flags=["after_curfew"])]))
    assert signal.type is AlertType.AFTER_CURFEW
    assert signal.originator == "person:S001"
    assert signal.severity is Severity.INFO
    assert signal.detail["gate_id"] == "main"


def test_a_normal_grant_raises_nothing() -> None:
    assert feed_access(rules(), [access(0)]) == []


def test_after_curfew_can_be_switched_off() -> None:
    engine = rules(enabled={"after_curfew": False})
    assert raised(feed_access(engine, [access(0, flags=["after_curfew"])])) == []


# --- tailgating -------------------------------------------------------------------------------


def test_more_faces_than_grants_in_a_door_cycle_is_tailgating() -> None:
    engine = rules()
    signals = feed_access(engine, [access(0, faces_in_view=2)])
    signals += engine.on_door(door("opened", 1), s(1))
    assert raised(signals) == []
    signals = engine.on_door(door("closed", 5, open_for_s=4.0), s(5))
    [signal] = raised(signals, AlertType.TAILGATING)
    assert signal.originator == GATE
    assert signal.detail["faces_in_view"] == 2
    assert signal.detail["grants"] == 1
    assert signal.detail["person_ids"] == ["S001"]
    assert signal.severity is Severity.MAJOR


def test_as_many_grants_as_faces_is_not_tailgating() -> None:
    engine = rules()
    feed_access(engine, [access(0, faces_in_view=2), access(1, person_id="S002", faces_in_view=2)])
    engine.on_door(door("opened", 2), s(2))
    assert raised(engine.on_door(door("closed", 5), s(5))) == []


def test_a_redelivered_grant_is_not_a_second_grant() -> None:
    engine = rules()
    grant = access(0, faces_in_view=2)
    feed_access(engine, [grant, grant])
    engine.on_door(door("opened", 1), s(1))
    assert raised(engine.on_door(door("closed", 5), s(5)), AlertType.TAILGATING)


def test_faces_seen_on_a_denial_during_the_cycle_count() -> None:
    engine = rules()
    feed_access(engine, [access(0, faces_in_view=1)])
    engine.on_door(door("opened", 1), s(1))
    feed_access(engine, [unknown(2, faces_in_view=2)])
    assert raised(engine.on_door(door("closed", 5), s(5)), AlertType.TAILGATING)


def test_a_denial_outside_any_cycle_starts_no_cycle() -> None:
    engine = rules()
    feed_access(engine, [unknown(0, faces_in_view=3)])
    engine.on_door(door("opened", 1), s(1))
    assert raised(engine.on_door(door("closed", 5), s(5))) == []


def test_the_next_grant_after_the_door_closed_starts_a_new_cycle() -> None:
    engine = rules()
    feed_access(engine, [access(0, faces_in_view=1)])
    engine.on_door(door("opened", 1), s(1))
    engine.on_door(door("closed", 4), s(4))
    feed_access(engine, [access(10, person_id="S002", faces_in_view=1)])
    engine.on_door(door("opened", 11), s(11))
    assert raised(engine.on_door(door("closed", 14), s(14))) == []


def test_a_gate_with_a_contact_sensor_drops_a_cycle_whose_door_never_opened() -> None:
    engine = rules(tailgating_cycle_s=20)
    engine.on_door(door("closed", -100), s(-100))  # the gate has a sensor
    feed_access(engine, [access(0, faces_in_view=2)])
    assert engine.tick(s(60)) == []


@pytest.mark.parametrize(("tick_at", "expected"), [(20.0, 0), (21.0, 1)])
def test_a_gate_without_a_sensor_judges_the_cycle_after_cycle_s(
    tick_at: float, expected: int
) -> None:
    engine = rules(tailgating_cycle_s=20)
    feed_access(engine, [access(0, faces_in_view=2)])
    assert len(raised(engine.tick(s(tick_at)), AlertType.TAILGATING)) == expected


def test_a_gate_without_a_sensor_judges_a_stale_cycle_when_the_next_event_arrives() -> None:
    engine = rules(tailgating_cycle_s=20)
    feed_access(engine, [access(0, faces_in_view=2)])
    signals = feed_access(engine, [access(100, person_id="S002", faces_in_view=1)])
    [signal] = raised(signals, AlertType.TAILGATING)
    assert signal.at == s(0)


def test_unlocked_and_locked_door_events_delimit_a_cycle_without_a_sensor() -> None:
    engine = rules()
    engine.on_door(door("unlocked", 0), s(0))
    feed_access(engine, [access(0.1, faces_in_view=3)])
    assert raised(engine.on_door(door("locked", 3), s(3)), AlertType.TAILGATING)


def test_tailgating_can_be_switched_off() -> None:
    engine = rules(enabled={"tailgating": False})
    feed_access(engine, [access(0, faces_in_view=4)])
    engine.on_door(door("opened", 1), s(1))
    assert raised(engine.on_door(door("closed", 5), s(5))) == []


# --- doors ------------------------------------------------------------------------------------


def test_held_open_raises_and_closing_clears_it_once() -> None:
    engine = rules()
    [signal] = engine.on_door(door("held_open", 31, open_for_s=31.0), s(31))
    assert (signal.action, signal.type, signal.originator) == (
        "raise",
        AlertType.DOOR_HELD_OPEN,
        GATE,
    )
    assert signal.detail["open_for_s"] == 31.0
    assert engine.on_door(door("held_open", 40, open_for_s=40.0), s(40)) == []
    [clear] = engine.on_door(door("closed", 45, open_for_s=45.0), s(45))
    assert (clear.action, clear.type) == ("clear", AlertType.DOOR_HELD_OPEN)
    assert engine.on_door(door("closed", 50), s(50)) == []


def test_the_first_close_after_a_start_clears_any_held_open_left_from_before() -> None:
    engine = rules()
    assert [x.action for x in engine.on_door(door("closed", 0), s(0))] == ["clear"]


def test_forced_open_raises_a_critical_alert_every_time() -> None:
    engine = rules()
    first = raised(engine.on_door(door("forced_open", 0), s(0)))
    second = raised(engine.on_door(door("forced_open", 9), s(9)))
    assert [x.type for x in first + second] == [AlertType.DOOR_FORCED_OPEN] * 2
    assert first[0].severity is Severity.CRITICAL


def test_severity_override_applies_to_signals() -> None:
    engine = rules(severity={"door_forced_open": "major"})
    [signal] = raised(engine.on_door(door("forced_open", 0), s(0)))
    assert signal.severity is Severity.MAJOR


# --- availability -----------------------------------------------------------------------------


def test_offline_is_raised_only_after_the_grace_period() -> None:
    engine = rules(offline_grace_s=60)
    assert engine.on_availability(GATE, "campus", "B1", "offline", s(0)) == []
    assert engine.tick(s(59)) == []
    [signal] = engine.tick(s(60))
    assert (signal.action, signal.type) == ("raise", AlertType.EDGE_OFFLINE)
    assert signal.at == s(0)
    assert signal.detail["offline_since"] == s(0).isoformat()
    assert engine.tick(s(120)) == []


def test_back_online_within_the_grace_period_raises_nothing() -> None:
    engine = rules(offline_grace_s=60)
    engine.on_availability(GATE, "campus", "B1", "offline", s(0))
    back = engine.on_availability(GATE, "campus", "B1", "online", s(30))
    assert raised(back) == []
    assert engine.tick(s(600)) == []


def test_back_online_after_the_alert_clears_it() -> None:
    engine = rules(offline_grace_s=0)
    [offline] = engine.on_availability(GATE, "campus", "B1", "offline", s(0))
    assert offline.action == "raise"
    assert engine.on_availability(GATE, "campus", "B1", "offline", s(5)) == []  # retained again
    [online] = engine.on_availability(GATE, "campus", "B1", "online", s(10))
    assert (online.action, online.type) == ("clear", AlertType.EDGE_OFFLINE)


@pytest.mark.parametrize(
    ("originator", "alert_type"),
    [
        (GATE, AlertType.EDGE_OFFLINE),
        (bridge_originator("campus", "br1"), AlertType.EDGE_OFFLINE),
        (DEVICE, AlertType.DEVICE_OFFLINE),
    ],
)
def test_offline_type_follows_the_originator(originator: str, alert_type: AlertType) -> None:
    engine = rules(offline_grace_s=0)
    [signal] = engine.on_availability(originator, "campus", "B1", "offline", s(0))
    assert signal.type is alert_type
    assert signal.originator == originator


# --- heartbeats -------------------------------------------------------------------------------


def test_heartbeat_alarms_raise_edge_alarm_with_the_list() -> None:
    engine = rules()
    alarms = ["outbox full: 12 message(s) held in memory (disk full)"]
    [signal] = engine.on_heartbeat(heartbeat(0, alarms=alarms), "campus", "B1", s(0))
    assert (signal.action, signal.type, signal.originator) == (
        "raise",
        AlertType.EDGE_ALARM,
        GATE,
    )
    assert signal.detail["alarms"] == alarms


def test_the_same_alarm_with_a_changing_count_is_not_raised_on_every_heartbeat() -> None:
    engine = rules()
    engine.on_heartbeat(heartbeat(0, alarms=["outbox full: 12 held"]), "campus", "B1", s(0))
    again = engine.on_heartbeat(
        heartbeat(30, alarms=["outbox full: 99 held"]), "campus", "B1", s(30)
    )
    assert again == []


def test_a_new_kind_of_alarm_raises_again_and_no_alarms_clears_once() -> None:
    engine = rules()
    engine.on_heartbeat(heartbeat(0, alarms=["outbox full: 1"]), "campus", "B1", s(0))
    more = engine.on_heartbeat(
        heartbeat(30, alarms=["outbox full: 1", "no access list: every ... denied"]),
        "campus",
        "B1",
        s(30),
    )
    assert [x.action for x in more] == ["raise"]
    [clear] = engine.on_heartbeat(heartbeat(60), "campus", "B1", s(60))
    assert clear.action == "clear"
    assert engine.on_heartbeat(heartbeat(90), "campus", "B1", s(90)) == []


@pytest.mark.parametrize(
    ("fields", "expected_prefix"),
    [
        ({"face_path": "disabled", "face_path_detail": "model missing"}, "face recognition"),
        ({"source_healthy": False, "source_detail": "no frame for 9 s"}, "camera unhealthy"),
    ],
)
def test_face_path_disabled_or_camera_down_count_as_alarms(
    fields: dict[str, Any], expected_prefix: str
) -> None:
    engine = rules()
    [signal] = engine.on_heartbeat(heartbeat(0, **fields), "campus", "B1", s(0))
    assert signal.action == "raise"
    assert signal.detail["alarms"][0].startswith(expected_prefix)


def test_heartbeat_originator_can_be_given() -> None:
    engine = rules()
    who = bridge_originator("campus", "br1")
    [signal] = engine.on_heartbeat(heartbeat(0, alarms=["x"]), "campus", "", s(0), originator=who)
    assert signal.originator == who


# --- device states ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "severity"),
    [
        (["leak"], Severity.CRITICAL),
        (["over_temperature"], Severity.CRITICAL),
        (["over_current"], Severity.MAJOR),
        (["stuck"], Severity.WARNING),
        (["filter_exhausted"], Severity.INFO),
        (["over_current", "leak"], Severity.CRITICAL),  # the worst fault decides
    ],
)
def test_appliance_faults_raise_with_the_severity_of_the_worst_fault(
    faults: list[str], severity: Severity
) -> None:
    engine = rules()
    [signal] = raised(engine.on_device_state(device_state(0, faults=faults), s(0)))
    assert signal.type is AlertType.APPLIANCE_FAULT
    assert signal.originator == DEVICE
    assert signal.severity is severity
    assert signal.detail["faults"] == sorted(faults)


def test_fault_severity_is_configurable() -> None:
    engine = rules(fault_severity={"stuck": "critical"})
    [signal] = raised(engine.on_device_state(device_state(0, faults=["stuck"]), s(0)))
    assert signal.severity is Severity.CRITICAL


def test_an_unchanged_fault_set_is_not_raised_again_and_a_new_fault_is() -> None:
    engine = rules()
    engine.on_device_state(device_state(0, faults=["over_current"]), s(0))
    assert raised(engine.on_device_state(device_state(5, faults=["over_current"]), s(5))) == []
    [again] = raised(engine.on_device_state(device_state(9, faults=["leak", "over_current"]), s(9)))
    assert again.severity is Severity.CRITICAL


def test_no_faults_clears_the_appliance_fault() -> None:
    engine = rules()
    engine.on_device_state(device_state(0, faults=["leak"]), s(0))
    signals = engine.on_device_state(device_state(60, faults=[]), s(60))
    assert [x.type for x in cleared(signals)] == [AlertType.APPLIANCE_FAULT]


def test_an_offline_device_raises_device_offline_after_the_grace_not_an_offline_fault() -> None:
    engine = rules(offline_grace_s=60)
    signals = engine.on_device_state(
        device_state(0, online=False, faults=["offline"], status="unknown"), s(0)
    )
    assert raised(signals) == []
    assert engine.tick(s(59)) == []
    assert [x.type for x in raised(engine.tick(s(60)))] == [AlertType.DEVICE_OFFLINE]
    assert engine.on_device_state(device_state(61, online=False, faults=["offline"]), s(61)) == []
    back = engine.on_device_state(device_state(90), s(90))
    assert [x.type for x in cleared(back)] == [AlertType.DEVICE_OFFLINE]


def test_a_device_back_within_the_grace_raises_nothing() -> None:
    """A broker restart: the bridge relays every device's last will, then each comes back."""
    engine = rules(offline_grace_s=60)
    engine.on_device_state(device_state(0, online=False, faults=["offline"]), s(0))
    assert raised(engine.on_device_state(device_state(5), s(5))) == []
    assert engine.tick(s(120)) == []


def test_device_availability_and_state_share_one_offline_condition() -> None:
    engine = rules(offline_grace_s=0)
    engine.on_device_state(device_state(0, online=False, faults=["offline"]), s(0))
    assert engine.on_availability(DEVICE, "campus", "B1", "offline", s(1)) == []


# --- sequence gaps ----------------------------------------------------------------------------


def test_the_first_sequence_number_seen_is_a_baseline() -> None:
    engine = rules()
    assert engine.on_seq(GATE, 500, s(0)) == []
    assert engine.on_seq(GATE, 501, s(1)) == []


def test_a_jump_in_sequence_raises_event_gap_with_the_missing_range() -> None:
    engine = rules()
    engine.on_seq(GATE, 10, s(0))
    [signal] = engine.on_seq(GATE, 14, s(1))
    assert (signal.action, signal.type, signal.originator) == ("raise", AlertType.EVENT_GAP, GATE)
    assert (signal.site, signal.building) == ("campus", "B1")
    assert signal.detail["missing"] == [[11, 13]]
    assert signal.detail["missing_count"] == 3


@pytest.mark.parametrize("late", [5, 10])
def test_an_older_or_repeated_sequence_number_is_not_a_gap(late: int) -> None:
    engine = rules()
    engine.on_seq(GATE, 10, s(0))
    assert engine.on_seq(GATE, late, s(1)) == []
    assert engine.on_seq(GATE, 11, s(2)) == []  # the last seq did not go backwards


def test_the_gap_clears_when_every_missing_event_has_arrived() -> None:
    engine = rules()
    engine.on_seq(GATE, 10, s(0))
    engine.on_seq(GATE, 14, s(1))
    assert engine.on_seq(GATE, 12, s(2)) == []
    assert engine.on_seq(GATE, 11, s(3)) == []
    assert engine.on_seq(GATE, 11, s(3)) == []  # a duplicate fills nothing
    [signal] = engine.on_seq(GATE, 13, s(4))
    assert (signal.action, signal.type) == ("clear", AlertType.EVENT_GAP)


def test_a_second_gap_raises_again_with_every_range_still_missing() -> None:
    engine = rules()
    engine.on_seq(GATE, 1, s(0))
    engine.on_seq(GATE, 3, s(1))
    [signal] = engine.on_seq(GATE, 6, s(2))
    assert signal.detail["missing"] == [[2, 2], [4, 5]]


def test_with_a_grace_a_gap_filled_in_time_raises_nothing() -> None:
    """Replicas commit a gate's events in any order: 12 before 11 is no gap to report."""
    engine = rules(event_gap_grace_s=30)
    engine.on_seq(GATE, 10, s(0))
    assert engine.on_seq(GATE, 12, s(1)) == []
    assert engine.on_seq(GATE, 11, s(2)) == []
    assert engine.tick(s(100)) == []


def test_with_a_grace_a_gap_still_open_after_it_is_raised_once_then_cleared() -> None:
    engine = rules(event_gap_grace_s=30)
    engine.on_seq(GATE, 10, s(0))
    assert engine.on_seq(GATE, 14, s(1)) == []
    assert engine.tick(s(30)) == []  # 29 s after the gap appeared
    [signal] = engine.tick(s(31))
    assert (signal.action, signal.type) == ("raise", AlertType.EVENT_GAP)
    assert signal.detail["missing"] == [[11, 13]]
    assert engine.tick(s(60)) == []  # raised once
    [jump] = engine.on_seq(GATE, 16, s(61))  # reported already: a new gap counts on it at once
    assert jump.detail["missing"] == [[11, 13], [15, 15]]
    for seq in (11, 12, 13):
        assert engine.on_seq(GATE, seq, s(62)) == []
    [done] = engine.on_seq(GATE, 15, s(63))
    assert (done.action, done.type) == ("clear", AlertType.EVENT_GAP)


def test_restored_sequence_spots_a_gap_across_a_gateway_restart() -> None:
    engine = rules()
    engine.restore_seq(GATE, 100)
    [signal] = engine.on_seq(GATE, 103, s(0))
    assert signal.detail["missing"] == [[101, 102]]


def test_events_without_sequence_are_ignored() -> None:
    engine = rules()
    engine.on_seq(GATE, 10, s(0))
    assert engine.on_seq(GATE, None, s(1)) == []


def test_sequences_are_kept_per_gate() -> None:
    engine = rules()
    other = gate_originator("campus", "B2", "main")
    engine.on_seq(GATE, 10, s(0))
    engine.on_seq(other, 50, s(0))
    assert engine.on_seq(GATE, 11, s(1)) == []
    assert engine.on_seq(other, 51, s(1)) == []


# --- configuration ----------------------------------------------------------------------------


def test_every_alert_type_is_enabled_with_a_default_severity() -> None:
    config = RulesConfig()
    for alert_type in AlertType:
        assert config.is_enabled(alert_type)
        assert isinstance(config.severity_of(alert_type), Severity)


@pytest.mark.parametrize("value", ["critical", "CRITICAL", 4, "4"])
def test_severity_is_given_by_name_or_number(value: object) -> None:
    config = RulesConfig.model_validate({"severity": {"tailgating": value}})
    assert config.severity_of(AlertType.TAILGATING) is Severity.CRITICAL


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"severity": {"tailgating": "loud"}}, "unknown severity"),
        ({"severity": {"appliance_fault": "critical"}}, "fault_severity"),
        ({"fault_severity": {"smoke": "critical"}}, "unknown fault"),
        ({"fault_severity": {"offline": "critical"}}, "unknown fault"),
        ({"unknown_face_count": 0}, "greater than or equal to 1"),
        ({"unknown_face_reasons": []}, "at least one"),
        ({"enabled": {"sparks": False}}, "sparks"),
        ({"tailgating": False}, "Extra inputs are not permitted"),
    ],
)
def test_bad_rule_config_is_rejected_with_a_reason(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RulesConfig.model_validate(config)
