"""Contract messages map to the measurements, tags and fields documented in docs/timeseries.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from contracts.models import (
    AccessEvent,
    Availability,
    BridgeHealth,
    CardSwipe,
    Command,
    DeviceState,
    DeviceTelemetry,
    DoorEvent,
    GalleryAck,
    Heartbeat,
    LatencyBreakdown,
    WireModel,
)
from contracts.topics import (
    BridgeChannel,
    DeviceAddress,
    DeviceChannel,
    GateAddress,
    GateChannel,
    bridge_topic,
    device_topic,
    gate_topic,
    parse_topic,
)
from gateway.timeseries import MEASUREMENTS, Point, device_series_key, points_for

TS = datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
GATE = GateAddress("north", "b7", "main-door")
DEVICE = DeviceAddress("north", "b7", "r101", "washer-0042")
GATE_TOPIC = parse_topic(gate_topic(GATE, GateChannel.HEARTBEAT))
DEVICE_TOPIC = parse_topic(device_topic(DEVICE, DeviceChannel.AVAILABILITY))
BRIDGE_TOPIC = parse_topic(bridge_topic("north", "bridge-1", BridgeChannel.HEALTH))
DEVICE_KEY = "north/b7/r101/washer-0042"


def face_access() -> AccessEvent:
    return AccessEvent(
        event_id="evt-0123456789",
        ts=TS,
        producer="gate:north/b7/main-door",
        site="north",
        building="b7",
        gate_id="main-door",
        direction="in",
        decision="granted",
        method="face",
        person_id="stu-20230001",
        reason="match",
        flags=["tailgate_suspected"],
        distance=0.41,
        margin=0.12,
        faces_in_view=1,
        frames_used=3,
        latency=LatencyBreakdown(
            detect_ms=8.0,
            encode_ms=80.0,
            match_ms=3.0,
            decide_ms=0.5,
            first_seen_to_decision_ms=240.0,
        ),
        seq=17,
    )


def card_access() -> AccessEvent:
    return AccessEvent(
        ts=TS,
        producer="gate:north/b7/main-door",
        site="north",
        building="b7",
        gate_id="main-door",
        direction="out",
        decision="denied",
        method="card",
        reason="unknown_card",
    )


def telemetry(**readings: object) -> DeviceTelemetry:
    return DeviceTelemetry(
        ts=TS,
        producer="bridge:north/bridge-1",
        site="north",
        building="b7",
        room="r101",
        device_id="washer-0042",
        kind="washer",
        **readings,  # type: ignore[arg-type]
    )


def device_state(**extra: object) -> DeviceState:
    values: dict[str, object] = {
        "ts": TS,
        "producer": "bridge:north/bridge-1",
        "site": "north",
        "building": "b7",
        "room": "r101",
        "device_id": "washer-0042",
        "kind": "washer",
        "status": "running",
    }
    values.update(extra)
    return DeviceState(**values)  # type: ignore[arg-type]


def heartbeat(**extra: object) -> Heartbeat:
    values: dict[str, object] = {
        "ts": TS,
        "producer": "gate:north/b7/main-door",
        "fps": 7,
        "last_frame_age_s": 0.2,
        "source_healthy": True,
        "outbox_depth": 4,
        "gallery_version": 12,
        "face_path": "ok",
        "uptime_s": 3600,
        "alarms": ["camera_dark"],
        "rejected_messages": 2,
    }
    values.update(extra)
    return Heartbeat(**values)  # type: ignore[arg-type]


def bridge_health() -> BridgeHealth:
    return BridgeHealth(
        ts=TS,
        producer="bridge:north/bridge-1",
        received=100,
        normalized=95,
        rejected=5,
        unknown_topic=1,
        devices=12,
        offline_devices=1,
        faulty_devices=2,
        uptime_s=60,
    )


def only(points: list[Point]) -> Point:
    assert len(points) == 1, points
    return points[0]


def test_face_access_event_maps_to_access_with_decision_tags_and_numbers_as_fields() -> None:
    point = only(points_for(face_access()))
    assert point.measurement == "access"
    assert dict(point.tags) == {
        "site": "north",
        "building": "b7",
        "gate": "main-door",
        "direction": "in",
        "decision": "granted",
        "method": "face",
        "reason": "match",
    }
    assert dict(point.fields) == {
        "count": 1,
        "identified": 1,
        "faces_in_view": 1,
        "frames_used": 3,
        "distance": 0.41,
        "margin": 0.12,
        "latency_ms": 240.0,
        "detect_ms": 8.0,
        "encode_ms": 80.0,
        "match_ms": 3.0,
        "decide_ms": 0.5,
    }
    assert point.ts == TS
    assert point.series_key is None


def test_card_access_omits_none_measures_and_stages_that_did_not_run() -> None:
    point = only(points_for(card_access()))
    assert dict(point.fields) == {"count": 1, "identified": 0, "faces_in_view": 0, "frames_used": 0}
    assert point.tags["method"] == "card"
    assert point.tags["decision"] == "denied"


def test_door_event_maps_to_door_with_kind_tag() -> None:
    event = DoorEvent(
        ts=TS,
        producer="gate:north/b7/main-door",
        site="north",
        building="b7",
        gate_id="main-door",
        kind="held_open",
        open_for_s=42.5,
        seq=3,
    )
    point = only(points_for(event))
    assert point.measurement == "door"
    assert dict(point.tags) == {
        "site": "north",
        "building": "b7",
        "gate": "main-door",
        "kind": "held_open",
    }
    assert dict(point.fields) == {"count": 1, "open_for_s": 42.5}
    closed = only(points_for(event.model_copy(update={"kind": "closed", "open_for_s": None})))
    assert dict(closed.fields) == {"count": 1}


def test_heartbeat_maps_to_edge_health_with_the_gate_from_the_topic() -> None:
    point = only(points_for(heartbeat(producer="some-other-name"), topic=GATE_TOPIC))
    assert point.measurement == "edge_health"
    assert dict(point.tags) == {"site": "north", "building": "b7", "gate": "main-door"}
    assert dict(point.fields) == {
        "online": 1,
        "fps": 7.0,
        "last_frame_age_s": 0.2,
        "source_healthy": 1,
        "outbox_depth": 4,
        "gallery_version": 12,
        "face_path_ok": 1,
        "uptime_s": 3600.0,
        "alarms": 1,
        "rejected_messages": 2,
    }


def test_heartbeat_without_topic_takes_the_gate_from_the_producer_id() -> None:
    point = only(points_for(heartbeat(last_frame_age_s=None, face_path="disabled")))
    assert dict(point.tags) == {"site": "north", "building": "b7", "gate": "main-door"}
    assert "last_frame_age_s" not in point.fields
    assert point.fields["face_path_ok"] == 0


def test_heartbeat_from_an_unknown_origin_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot tell which gate"):
        points_for(heartbeat(producer="mystery"))


def test_telemetry_maps_to_appliance_with_type_tag_and_device_series_key() -> None:
    reading = telemetry(
        power_w=1800,
        energy_kwh=12.5,
        voltage_v=229.8,
        current_a=7.9,
        temperature_c=41,
        water_l=3.5,
        leak=False,
        door_open=True,
    )
    point = only(points_for(reading))
    assert point.measurement == "appliance"
    assert dict(point.tags) == {
        "site": "north",
        "building": "b7",
        "room": "r101",
        "device_type": "washer",
    }
    assert point.series_key == DEVICE_KEY == device_series_key("north", "b7", "r101", "washer-0042")
    assert dict(point.fields) == {
        "power_w": 1800.0,
        "energy_kwh": 12.5,
        "voltage_v": 229.8,
        "current_a": 7.9,
        "temperature_c": 41.0,
        "water_l": 3.5,
        "leak": 0,
        "door_open": 1,
    }


def test_telemetry_omits_readings_that_are_none() -> None:
    point = only(points_for(telemetry(power_w=5.0)))
    assert dict(point.fields) == {"power_w": 5.0}


def test_telemetry_without_any_reading_gives_no_point() -> None:
    assert points_for(telemetry()) == []


def test_device_state_maps_to_appliance_state_with_status_tag_and_fault_flags() -> None:
    state = device_state(
        faults=["leak", "overrun"],
        remaining_s=600,
        power_w=1500.0,
        sessions=7,
        online=True,
    )
    point = only(points_for(state))
    assert point.measurement == "appliance_state"
    assert dict(point.tags) == {
        "site": "north",
        "building": "b7",
        "room": "r101",
        "device_type": "washer",
        "status": "running",
    }
    assert point.series_key == DEVICE_KEY
    fields = dict(point.fields)
    assert fields["running"] == 1
    assert fields["online"] == 1
    assert fields["fault_count"] == 2
    assert fields["fault_leak"] == 1
    assert fields["fault_overrun"] == 1
    assert fields["fault_stuck"] == 0
    assert fields["remaining_s"] == 600.0
    assert fields["power_w"] == 1500.0
    assert fields["sessions"] == 7
    assert "energy_kwh" not in fields
    assert "filter_life_pct" not in fields


@pytest.mark.parametrize(
    ("status", "running"),
    [("running", 1), ("in_use", 1), ("heating", 1), ("idle", 0), ("finished", 0), ("ready", 0)],
)
def test_running_flag_follows_the_busy_statuses(status: str, running: int) -> None:
    point = only(points_for(device_state(status=status)))
    assert point.fields["running"] == running


def test_bridge_health_maps_to_bridge_health_tagged_with_site_and_bridge() -> None:
    point = only(points_for(bridge_health()))
    assert point.measurement == "bridge_health"
    assert dict(point.tags) == {"site": "north", "bridge": "bridge-1"}
    assert dict(point.fields) == {
        "online": 1,
        "received": 100,
        "normalized": 95,
        "rejected": 5,
        "unknown_topic": 1,
        "devices": 12,
        "offline_devices": 1,
        "faulty_devices": 2,
        "uptime_s": 60.0,
    }
    via_topic = only(points_for(bridge_health(), topic=BRIDGE_TOPIC))
    assert dict(via_topic.tags) == {"site": "north", "bridge": "bridge-1"}


def test_gate_offline_last_will_writes_online_0_at_the_receive_time() -> None:
    received = TS + timedelta(seconds=5)
    will = Availability(producer="gate:north/b7/main-door", state="offline")
    point = only(points_for(will, topic=GATE_TOPIC, received_at=received))
    assert point.measurement == "edge_health"
    assert dict(point.fields) == {"online": 0}
    assert point.ts == received


def test_availability_with_its_own_timestamp_keeps_it() -> None:
    online = Availability(producer="bridge:north/bridge-1", state="online", ts=TS)
    point = only(points_for(online, received_at=TS + timedelta(hours=1)))
    assert point.measurement == "bridge_health"
    assert dict(point.tags) == {"site": "north", "bridge": "bridge-1"}
    assert point.ts == TS
    assert dict(point.fields) == {"online": 1}


def test_device_availability_goes_to_appliance_state_under_the_device_key() -> None:
    will = Availability(producer="bridge:north/bridge-1", state="offline")
    point = only(points_for(will, topic=DEVICE_TOPIC, received_at=TS))
    assert point.measurement == "appliance_state"
    assert dict(point.tags) == {"site": "north", "building": "b7", "room": "r101"}
    assert point.series_key == DEVICE_KEY
    assert dict(point.fields) == {"online": 0}


def test_availability_without_any_time_is_a_clear_error() -> None:
    will = Availability(producer="gate:north/b7/main-door", state="offline")
    with pytest.raises(ValueError, match="received_at"):
        points_for(will, topic=GATE_TOPIC)


@pytest.mark.parametrize(
    "message",
    [
        Command(producer="gateway", correlation_id="corr-1", command="unlock"),
        GalleryAck(producer="gate:north/b7/main-door", correlation_id="c", version=1, applied=True),
        CardSwipe(producer="reader-1", card_uid="04A1B2C3"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_messages_without_metrics_give_no_points(message: WireModel) -> None:
    assert points_for(message) == []


def all_metric_messages() -> list[tuple[WireModel, dict[str, object]]]:
    gate_will = Availability(producer="gate:north/b7/main-door", state="offline")
    device_will = Availability(producer="bridge:north/bridge-1", state="offline")
    return [
        (face_access(), {}),
        (card_access(), {}),
        (
            DoorEvent(
                producer="gate:north/b7/main-door",
                site="north",
                building="b7",
                gate_id="main-door",
                kind="opened",
            ),
            {},
        ),
        (heartbeat(), {"topic": GATE_TOPIC}),
        (telemetry(power_w=3.0, leak=True), {}),
        (device_state(faults=["stuck"]), {}),
        (bridge_health(), {}),
        (gate_will, {"topic": GATE_TOPIC, "received_at": TS}),
        (device_will, {"topic": DEVICE_TOPIC, "received_at": TS}),
    ]


@pytest.mark.parametrize(
    ("message", "context"),
    all_metric_messages(),
    ids=lambda v: type(v).__name__ if isinstance(v, WireModel) else "",
)
def test_no_id_ever_appears_in_tags(message: WireModel, context: dict[str, object]) -> None:
    """Person, event, correlation, device ids and producer ids stay out of tags (cardinality)."""
    points = points_for(message, **context)  # type: ignore[arg-type]
    assert points
    ids = {
        str(getattr(message, name))
        for name in ("event_id", "person_id", "device_id", "correlation_id", "producer", "seq")
        if getattr(message, name, None) is not None
    }
    ids |= {"washer-0042", DEVICE_KEY}
    for point in points:
        assert point.measurement in MEASUREMENTS
        assert not set(point.tags) & {"event_id", "person_id", "device_id", "device", "producer"}
        assert not ids & set(point.tags.values()), (point.tags, ids)


@pytest.mark.parametrize(
    ("message", "context"),
    all_metric_messages(),
    ids=lambda v: type(v).__name__ if isinstance(v, WireModel) else "",
)
def test_fields_are_plain_numbers_and_yes_no_is_0_or_1(
    message: WireModel, context: dict[str, object]
) -> None:
    """bool -> int 0/1; never a bool, None or a string in fields; timestamps UTC."""
    flag_fields = {
        "count",
        "identified",
        "online",
        "source_healthy",
        "face_path_ok",
        "leak",
        "door_open",
        "running",
    }
    for point in points_for(message, **context):  # type: ignore[arg-type]
        assert point.ts.tzinfo is UTC
        for name, value in point.fields.items():
            assert type(value) in (int, float), (name, value)
            if name in flag_fields or (name.startswith("fault_") and name != "fault_count"):
                assert value in (0, 1) and type(value) is int, (name, value)


def test_point_refuses_naive_timestamps_non_finite_values_and_no_fields() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Point("m", {}, {"v": 1}, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="not finite"):
        Point("m", {}, {"v": float("nan")}, TS)
    with pytest.raises(ValueError, match="no fields"):
        Point("m", {}, {}, TS)
    with pytest.raises(ValueError, match="empty tag"):
        Point("m", {"site": ""}, {"v": 1}, TS)


def test_point_is_a_read_only_snapshot_in_utc() -> None:
    tags = {"site": "north"}
    east = datetime(2025, 1, 1, 8, tzinfo=UTC).astimezone(timezone(timedelta(hours=8)))
    point = Point("m", tags, {"v": 1}, east)
    tags["site"] = "south"
    assert point.tags["site"] == "north"
    assert point.ts == datetime(2025, 1, 1, 8, tzinfo=UTC)
    assert point.ts.tzinfo is UTC
    with pytest.raises(TypeError):
        point.tags["site"] = "x"  # type: ignore[index]
