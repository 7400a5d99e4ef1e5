"""Contract messages -> time-series points (pure; the schema is documented in docs/timeseries.md).

Tags carry only low-cardinality metadata (site, building, gate, room, device type and the
decision/status vocabulary); numbers are fields with one fixed type per field name (InfluxDB
rejects a field that changes type). Person, event, correlation and device ids never become tags:
each distinct tag value creates a new series in InfluxDB, so a per-person or per-event tag grows
the series index without bound. A device's own history is kept apart by ``Point.series_key``,
which only the embedded SQLite store uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol, get_args

from contracts.models import (
    AccessEvent,
    ApplianceFault,
    Availability,
    BridgeHealth,
    DeviceState,
    DeviceTelemetry,
    DoorEvent,
    Heartbeat,
    WireModel,
)
from contracts.topics import ParsedTopic
from gateway.domain.appliances import BUSY_STATUSES
from gateway.timeseries.base import FieldValue, Point

ACCESS = "access"
DOOR = "door"
EDGE_HEALTH = "edge_health"
APPLIANCE = "appliance"
APPLIANCE_STATE = "appliance_state"
BRIDGE_HEALTH = "bridge_health"
ALERT = "alert"

MEASUREMENTS = (ACCESS, DOOR, EDGE_HEALTH, APPLIANCE, APPLIANCE_STATE, BRIDGE_HEALTH, ALERT)

# Statuses in which an appliance is occupied (the `running` field is 1).
APPLIANCE_FAULTS: tuple[str, ...] = get_args(ApplianceFault)


def device_series_key(site: str, building: str, room: str, device_id: str) -> str:
    """The series key of one appliance: its full address, unique across the campus."""
    return f"{site}/{building}/{room}/{device_id}"


def points_for(
    message: WireModel,
    *,
    topic: ParsedTopic | None = None,
    received_at: datetime | None = None,
) -> list[Point]:
    """The points one contract message contributes; [] for messages that carry no metrics.

    ``topic`` (the parsed MQTT topic) tells where a Heartbeat, BridgeHealth or Availability came
    from; without it the producer id (``gate:<site>/<building>/<gate>``,
    ``bridge:<site>/<bridge>``) is used. ``received_at`` timestamps an Availability that has
    none (the offline last will). ValueError when the origin or time cannot be told.
    """
    if isinstance(message, AccessEvent):
        return [_access(message)]
    if isinstance(message, DoorEvent):
        return [_door(message)]
    if isinstance(message, Heartbeat):
        return [_edge_health(message, topic)]
    if isinstance(message, DeviceTelemetry):
        return _appliance(message)
    if isinstance(message, DeviceState):
        return [_appliance_state(message)]
    if isinstance(message, BridgeHealth):
        return [_bridge_health(message, topic)]
    if isinstance(message, Availability):
        return _availability(message, topic, received_at)
    return []


def _flag(value: bool) -> int:
    return 1 if value else 0


def _put_float(fields: dict[str, FieldValue], name: str, value: float | None) -> None:
    if value is not None:
        fields[name] = float(value)


def _put_flag(fields: dict[str, FieldValue], name: str, value: bool | None) -> None:
    if value is not None:
        fields[name] = _flag(value)


def _access(event: AccessEvent) -> Point:
    fields: dict[str, FieldValue] = {
        "count": 1,
        "identified": _flag(event.person_id is not None),
        "faces_in_view": event.faces_in_view,
        "frames_used": event.frames_used,
    }
    _put_float(fields, "distance", event.distance)
    _put_float(fields, "margin", event.margin)
    # Stage timings default to 0 when a stage did not run (card/PIN): 0 means "not measured".
    latency = event.latency
    for name, value in (
        ("latency_ms", latency.first_seen_to_decision_ms),
        ("detect_ms", latency.detect_ms),
        ("encode_ms", latency.encode_ms),
        ("match_ms", latency.match_ms),
        ("decide_ms", latency.decide_ms),
    ):
        if value > 0:
            fields[name] = float(value)
    tags = {
        "site": event.site,
        "building": event.building,
        "gate": event.gate_id,
        "direction": event.direction,
        "decision": event.decision,
        "method": event.method,
        "reason": event.reason,
    }
    return Point(ACCESS, tags, fields, event.ts)


def _door(event: DoorEvent) -> Point:
    fields: dict[str, FieldValue] = {"count": 1}
    _put_float(fields, "open_for_s", event.open_for_s)
    tags = {
        "site": event.site,
        "building": event.building,
        "gate": event.gate_id,
        "kind": event.kind,
    }
    return Point(DOOR, tags, fields, event.ts)


def _split_producer(producer: str, prefix: str, parts: int) -> list[str] | None:
    if not producer.startswith(prefix):
        return None
    segments = producer[len(prefix) :].split("/")
    if len(segments) != parts or not all(segments):
        return None
    return segments


def _gate_tags(topic: ParsedTopic | None, producer: str) -> dict[str, str] | None:
    if topic is not None:
        if topic.kind == "gate" and topic.gate_id:
            return {"site": topic.site, "building": topic.building, "gate": topic.gate_id}
        return None
    segments = _split_producer(producer, "gate:", 3)
    if segments is None:
        return None
    return {"site": segments[0], "building": segments[1], "gate": segments[2]}


def _bridge_tags(topic: ParsedTopic | None, producer: str) -> dict[str, str] | None:
    if topic is not None:
        if topic.kind == "bridge" and topic.device_id:
            return {"site": topic.site, "bridge": topic.device_id}
        return None
    segments = _split_producer(producer, "bridge:", 2)
    if segments is None:
        return None
    return {"site": segments[0], "bridge": segments[1]}


def _edge_health(beat: Heartbeat, topic: ParsedTopic | None) -> Point:
    tags = _gate_tags(topic, beat.producer)
    if tags is None:
        raise ValueError(f"heartbeat from {beat.producer!r}: cannot tell which gate sent it")
    fields: dict[str, FieldValue] = {
        "online": 1,
        "fps": float(beat.fps),
        "source_healthy": _flag(beat.source_healthy),
        "outbox_depth": beat.outbox_depth,
        "gallery_version": beat.gallery_version,
        "face_path_ok": _flag(beat.face_path == "ok"),
        "uptime_s": float(beat.uptime_s),
        "alarms": len(beat.alarms),
        "rejected_messages": beat.rejected_messages,
    }
    _put_float(fields, "last_frame_age_s", beat.last_frame_age_s)
    return Point(EDGE_HEALTH, tags, fields, beat.ts)


def _appliance_tags(site: str, building: str, room: str, kind: str) -> dict[str, str]:
    return {"site": site, "building": building, "room": room, "device_type": kind}


def _appliance(reading: DeviceTelemetry) -> list[Point]:
    fields: dict[str, FieldValue] = {}
    _put_float(fields, "power_w", reading.power_w)
    _put_float(fields, "energy_kwh", reading.energy_kwh)
    _put_float(fields, "voltage_v", reading.voltage_v)
    _put_float(fields, "current_a", reading.current_a)
    _put_float(fields, "temperature_c", reading.temperature_c)
    _put_float(fields, "water_l", reading.water_l)
    _put_flag(fields, "leak", reading.leak)
    _put_flag(fields, "door_open", reading.door_open)
    if not fields:
        return []
    tags = _appliance_tags(reading.site, reading.building, reading.room, reading.kind)
    key = device_series_key(reading.site, reading.building, reading.room, reading.device_id)
    return [Point(APPLIANCE, tags, fields, reading.ts, series_key=key)]


def _appliance_state(state: DeviceState) -> Point:
    fields: dict[str, FieldValue] = {
        "running": _flag(state.status in BUSY_STATUSES),
        "online": _flag(state.online),
        "fault_count": len(state.faults),
        "sessions": state.sessions,
    }
    for fault in APPLIANCE_FAULTS:
        fields[f"fault_{fault}"] = _flag(fault in state.faults)
    _put_float(fields, "remaining_s", state.remaining_s)
    _put_float(fields, "power_w", state.power_w)
    _put_float(fields, "energy_kwh", state.energy_kwh)
    _put_float(fields, "temperature_c", state.temperature_c)
    _put_float(fields, "filter_life_pct", state.filter_life_pct)
    tags = _appliance_tags(state.site, state.building, state.room, state.kind)
    tags["status"] = state.status
    key = device_series_key(state.site, state.building, state.room, state.device_id)
    return Point(APPLIANCE_STATE, tags, fields, state.ts, series_key=key)


def _bridge_health(health: BridgeHealth, topic: ParsedTopic | None) -> Point:
    tags = _bridge_tags(topic, health.producer)
    if tags is None:
        raise ValueError(f"bridge health from {health.producer!r}: cannot tell which bridge")
    fields: dict[str, FieldValue] = {
        "online": 1,
        "received": health.received,
        "normalized": health.normalized,
        "rejected": health.rejected,
        "unknown_topic": health.unknown_topic,
        "devices": health.devices,
        "offline_devices": health.offline_devices,
        "faulty_devices": health.faulty_devices,
        "uptime_s": float(health.uptime_s),
    }
    return Point(BRIDGE_HEALTH, tags, fields, health.ts)


def _availability(
    message: Availability, topic: ParsedTopic | None, received_at: datetime | None
) -> list[Point]:
    ts = message.ts or received_at
    if ts is None:
        raise ValueError(f"availability of {message.producer!r} has no timestamp; pass received_at")
    fields: dict[str, FieldValue] = {"online": _flag(message.state == "online")}
    if topic is not None and topic.kind == "device" and topic.room and topic.device_id:
        tags = {"site": topic.site, "building": topic.building, "room": topic.room}
        key = device_series_key(topic.site, topic.building, topic.room, topic.device_id)
        return [Point(APPLIANCE_STATE, tags, fields, ts, series_key=key)]
    gate = _gate_tags(topic, message.producer)
    if gate is not None:
        return [Point(EDGE_HEALTH, gate, fields, ts)]
    bridge = _bridge_tags(topic, message.producer)
    if bridge is not None:
        return [Point(BRIDGE_HEALTH, bridge, fields, ts)]
    raise ValueError(f"availability of {message.producer!r}: cannot tell what it belongs to")


# --- alerts ------------------------------------------------------------------------------------

AlertEvent = Literal["raised", "acknowledged", "escalated", "cleared"]


class AlertLike(Protocol):
    """What the alert measurement reads of an alert after a change (the API's AlertView)."""

    @property
    def site(self) -> str: ...
    @property
    def building(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def severity(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def count(self) -> int: ...
    @property
    def silenced(self) -> bool: ...
    @property
    def needs_review(self) -> bool: ...
    @property
    def escalation_level(self) -> int: ...
    @property
    def first_at(self) -> datetime: ...
    @property
    def annunciated_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def acked_at(self) -> datetime | None: ...
    @property
    def escalated_at(self) -> datetime | None: ...
    @property
    def cleared_at(self) -> datetime | None: ...
    @property
    def cleared_by(self) -> str | None: ...


def alert_event(alert: AlertLike) -> AlertEvent | None:
    """Which lifecycle event a change was, judged from the stamps the change set (updated_at).

    A repeat, an assignment or a comment is none of them.
    """
    at = alert.updated_at
    if alert.cleared_at == at:
        return "cleared"
    if alert.escalated_at == at:
        return "escalated"
    if alert.acked_at == at:
        return "acknowledged"
    if (
        alert.annunciated_at == at
        and alert.count == 1
        and alert.state == "active"
        and alert.escalation_level == 0
    ):
        return "raised"
    return None


def alert_points(event: AlertEvent, alert: AlertLike, at: datetime) -> list[Point]:
    """One ``alert`` point for a lifecycle change (schema: docs/timeseries.md)."""
    from gateway.alerts.types import Severity

    tags = {
        "site": alert.site,
        "building": alert.building or "-",
        "type": str(alert.type),
        "severity": Severity(alert.severity).name.lower(),
        "event": event,
    }
    fields: dict[str, FieldValue] = {"count": 1}
    ts = at
    if event == "raised":
        fields["silenced"] = int(alert.silenced)
        ts = alert.first_at
    elif event == "acknowledged" and alert.acked_at is not None:
        fields["ack_seconds"] = max(0.0, (alert.acked_at - alert.annunciated_at).total_seconds())
    elif event == "escalated":
        fields["escalation_level"] = alert.escalation_level
    elif event == "cleared" and alert.cleared_at is not None:
        fields["open_seconds"] = max(0.0, (alert.cleared_at - alert.first_at).total_seconds())
        fields["auto_cleared"] = int(alert.cleared_by is None)
        fields["needs_review"] = int(alert.needs_review)
    return [Point(ALERT, tags, fields, ts)]
