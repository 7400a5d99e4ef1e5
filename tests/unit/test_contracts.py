"""The wire contract: topic builders and parser, payload models, the topic -> model registry."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.models import (
    SCHEMA_VERSION,
    AccessEvent,
    Availability,
    CardSwipe,
    Command,
    CommandResult,
    DoorEvent,
    GalleryAck,
    GalleryUpdate,
    Heartbeat,
    LatencyBreakdown,
    SecurityEvent,
    WireModel,
)
from contracts.registry import GATE_MODELS, PayloadError, model_for, parse_message
from contracts.topics import (
    DeviceAddress,
    DeviceChannel,
    GateAddress,
    GateChannel,
    ParsedTopic,
    check_segment,
    device_filter,
    device_topic,
    gate_filter,
    gate_topic,
    parse_topic,
    shared,
)

GATE = GateAddress("campus", "B1", "B1-main")
DEVICE = DeviceAddress("campus", "B1", "R101", "washer-1")
TS = datetime(2024, 3, 6, 4, 0, tzinfo=UTC)

# Each value breaks the segment rule in a different way.
INVALID_SEGMENT_VALUES = {
    "empty": "",
    "slash": "a/b",
    "plus": "+",
    "embedded-plus": "gate+1",
    "hash": "#",
    "embedded-hash": "gate#1",
    "space": "B1 main",
    "tab": "B1\tmain",
    "65-chars": "x" * 65,
    "leading-dash": "-B1",
    "leading-underscore": "_B1",
    "leading-dot": ".B1",
    "non-ascii": "Bé",
    "dollar": "$SYS",
}
INVALID_SEGMENTS = [pytest.param(v, id=k) for k, v in INVALID_SEGMENT_VALUES.items()]
VALID_SEGMENTS = ["a", "0", "B1", "B1-main", "gate_2.north", "x" * 64]


def mqtt_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 topic matching ('+' one level, '#' the rest), as the broker applies it."""
    filter_parts, topic_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(filter_parts):
        if part == "#":
            return True
        if i >= len(topic_parts) or part not in ("+", topic_parts[i]):
            return False
    return len(filter_parts) == len(topic_parts)


# ---------------------------------------------------------------- topic builders


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        (GateChannel.EVENT, "dorm/campus/B1/gate/B1-main/event"),
        (GateChannel.DOOR, "dorm/campus/B1/gate/B1-main/door"),
        (GateChannel.AVAILABILITY, "dorm/campus/B1/gate/B1-main/availability"),
        (GateChannel.HEARTBEAT, "dorm/campus/B1/gate/B1-main/heartbeat"),
        (GateChannel.GALLERY, "dorm/campus/B1/gate/B1-main/gallery"),
        (GateChannel.GALLERY_ACK, "dorm/campus/B1/gate/B1-main/gallery/ack"),
        (GateChannel.COMMAND, "dorm/campus/B1/gate/B1-main/command"),
        (GateChannel.COMMAND_RESULT, "dorm/campus/B1/gate/B1-main/command/result"),
        (GateChannel.CARD, "dorm/campus/B1/gate/B1-main/card"),
        (GateChannel.CONTACT, "dorm/campus/B1/gate/B1-main/contact"),
    ],
)
def test_gate_topic_is_dorm_site_building_gate_id_channel(
    channel: GateChannel, expected: str
) -> None:
    assert gate_topic(GATE, channel) == expected


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        (DeviceChannel.STATE, "dorm/campus/B1/room/R101/device/washer-1/state"),
        (DeviceChannel.TELEMETRY, "dorm/campus/B1/room/R101/device/washer-1/telemetry"),
        (DeviceChannel.AVAILABILITY, "dorm/campus/B1/room/R101/device/washer-1/availability"),
    ],
)
def test_device_topic_is_dorm_site_building_room_device_channel(
    channel: DeviceChannel, expected: str
) -> None:
    assert device_topic(DEVICE, channel) == expected


@pytest.mark.parametrize("value", VALID_SEGMENTS)
def test_segment_of_1_to_64_safe_characters_is_accepted(value: str) -> None:
    assert check_segment(value, "gate id") == value


@pytest.mark.parametrize("value", INVALID_SEGMENTS)
@pytest.mark.parametrize("field", ["site", "building", "gate id"])
def test_gate_address_rejects_invalid_segment_naming_the_field(field: str, value: str) -> None:
    parts = {"site": "campus", "building": "B1", "gate id": "B1-main"} | {field: value}
    with pytest.raises(ValueError, match=rf"^{field} ") as excinfo:
        GateAddress(parts["site"], parts["building"], parts["gate id"])
    assert repr(value) in str(excinfo.value)


@pytest.mark.parametrize("value", INVALID_SEGMENTS)
@pytest.mark.parametrize("field", ["site", "building", "room", "device id"])
def test_device_address_rejects_invalid_segment_naming_the_field(field: str, value: str) -> None:
    parts = {"site": "campus", "building": "B1", "room": "R101", "device id": "washer-1"}
    parts[field] = value
    with pytest.raises(ValueError, match=rf"^{field} ") as excinfo:
        DeviceAddress(parts["site"], parts["building"], parts["room"], parts["device id"])
    assert repr(value) in str(excinfo.value)


@pytest.mark.parametrize("value", ["B1-main\n", "campus\n"])
def test_segment_with_trailing_newline_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="not a valid topic segment"):
        check_segment(value, "gate id")


# ---------------------------------------------------------------- parse_topic


@pytest.mark.parametrize("channel", list(GateChannel))
@pytest.mark.parametrize(
    "addr", [GATE, GateAddress("north-campus", "Block_7", "7.east-2"), GateAddress("a", "b", "c")]
)
def test_parse_topic_round_trips_every_gate_topic(addr: GateAddress, channel: GateChannel) -> None:
    assert parse_topic(gate_topic(addr, channel)) == ParsedTopic(
        kind="gate",
        site=addr.site,
        building=addr.building,
        channel=channel.value,
        gate_id=addr.gate_id,
    )


@pytest.mark.parametrize("channel", list(DeviceChannel))
@pytest.mark.parametrize("addr", [DEVICE, DeviceAddress("s", "b", "0", "d.1")])
def test_parse_topic_round_trips_every_device_topic(
    addr: DeviceAddress, channel: DeviceChannel
) -> None:
    assert parse_topic(device_topic(addr, channel)) == ParsedTopic(
        kind="device",
        site=addr.site,
        building=addr.building,
        channel=channel.value,
        room=addr.room,
        device_id=addr.device_id,
    )


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("home/campus/B1/gate/B1-main/event", "is not a dormguard topic"),
        ("Dorm/campus/B1/gate/B1-main/event", "is not a dormguard topic"),
        ("/dorm/campus/B1/gate/B1-main/event", "is not a dormguard topic"),
        ("dorm/campus/B1/gate", "is not a dormguard topic"),
        ("dorm", "is not a dormguard topic"),
        ("", "is not a dormguard topic"),
        ("zigbee2mqtt/gate1-contact", "is not a dormguard topic"),
        ("dorm/campus/B1/gate/B1-main", "does not match any dormguard topic layout"),
        ("dorm/campus/B1/lift/L1/event", "does not match any dormguard topic layout"),
        ("dorm/campus/B1/room/R101/washer-1/state", "does not match any dormguard topic layout"),
        ("dorm/campus/B1/room/R101/sensor/washer-1/state", "does not match any dormguard topic"),
        ("dorm/campus/B1/room/R101/device/washer-1/state/x", "does not match any dormguard"),
        ("dorm/campus/B1/gate/B1-main/bogus", "unknown gate channel 'bogus'"),
        ("dorm/campus/B1/gate/B1-main/event/", "unknown gate channel 'event/'"),
        ("dorm/campus/B1/gate/B1-main/EVENT", "unknown gate channel 'EVENT'"),
        ("dorm/campus/B1/gate/B1-main/gallery/nack", "unknown gate channel 'gallery/nack'"),
        ("dorm/campus/B1/gate/B1-main/event/extra", "unknown gate channel 'event/extra'"),
        ("dorm/campus/B1/room/R101/device/washer-1/telemetri", "unknown device channel"),
        ("dorm/campus/B1/room/R101/device/washer-1/command", "unknown device channel 'command'"),
    ],
)
def test_parse_topic_rejects_foreign_or_unknown_topic_quoting_it(topic: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as excinfo:
        parse_topic(topic)
    assert repr(topic) in str(excinfo.value)


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        ("dorm/cam pus/B1/gate/B1-main/event", "site"),
        ("dorm/campus/+/gate/B1-main/event", "building"),
        ("dorm/campus/B1/gate/#/event", "gate id"),
        ("dorm/campus/B1/gate//event", "gate id"),
        ("dorm/campus/B1/room/-R101/device/washer-1/state", "room"),
        ("dorm/campus/B1/room/R101/device/+/state", "device id"),
    ],
)
def test_parse_topic_rejects_invalid_segment_naming_the_field(topic: str, field: str) -> None:
    with pytest.raises(ValueError, match=rf"(^|: ){field} '.*' is not a valid topic segment"):
        parse_topic(topic)


def test_parse_topic_rejects_gate_id_with_trailing_newline() -> None:
    with pytest.raises(ValueError):
        parse_topic("dorm/campus/B1/gate/B1-main\n/event")


# ---------------------------------------------------------------- filters and shared()


def test_gate_filter_defaults_to_every_gate_of_the_site() -> None:
    assert gate_filter("campus", GateChannel.EVENT) == "dorm/campus/+/gate/+/event"


@pytest.mark.parametrize("channel", list(GateChannel))
def test_gate_filter_matches_that_channel_of_any_gate_and_nothing_else(
    channel: GateChannel,
) -> None:
    topic_filter = gate_filter("campus", channel)
    for addr in (GATE, GateAddress("campus", "B2", "side-door")):
        for other in GateChannel:
            assert mqtt_matches(topic_filter, gate_topic(addr, other)) == (other == channel)
    assert not mqtt_matches(topic_filter, gate_topic(GateAddress("annex", "B1", "g"), channel))


def test_gate_filter_narrowed_to_one_gate_matches_only_that_gate() -> None:
    topic_filter = gate_filter("campus", GateChannel.COMMAND, building="B1", gate_id="B1-main")
    assert topic_filter == "dorm/campus/B1/gate/B1-main/command"
    assert mqtt_matches(topic_filter, gate_topic(GATE, GateChannel.COMMAND))
    assert not mqtt_matches(
        topic_filter, gate_topic(GateAddress("campus", "B1", "B1-side"), GateChannel.COMMAND)
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param(field, value, id=f"{field}-{name}")
        for field in ("site", "building", "gate id")
        for name, value in INVALID_SEGMENT_VALUES.items()
        # '+' is the documented wildcard for building and gate id, not for site.
        if not (value == "+" and field != "site")
    ],
)
def test_gate_filter_rejects_invalid_segment_naming_the_field(field: str, value: str) -> None:
    kwargs = {"site": "campus", "building": "+", "gate_id": "+"}
    kwargs[field.replace(" ", "_")] = value
    with pytest.raises(ValueError, match=rf"^{field} "):
        gate_filter(kwargs["site"], GateChannel.EVENT, kwargs["building"], kwargs["gate_id"])


@pytest.mark.parametrize("channel", list(DeviceChannel))
def test_device_filter_matches_that_channel_of_every_device_of_the_site(
    channel: DeviceChannel,
) -> None:
    topic_filter = device_filter("campus", channel)
    assert topic_filter == f"dorm/campus/+/room/+/device/+/{channel.value}"
    for addr in (DEVICE, DeviceAddress("campus", "B9", "R999", "dryer-3")):
        for other in DeviceChannel:
            assert mqtt_matches(topic_filter, device_topic(addr, other)) == (other == channel)
    assert not mqtt_matches(
        topic_filter, device_topic(DeviceAddress("annex", "B", "R", "d"), channel)
    )


@pytest.mark.parametrize("value", INVALID_SEGMENTS)
def test_device_filter_rejects_invalid_site(value: str) -> None:
    with pytest.raises(ValueError, match=r"^site "):
        device_filter(value, DeviceChannel.STATE)


@pytest.mark.parametrize(
    "topic_filter",
    ["dorm/campus/+/gate/+/event", "dorm/campus/+/room/+/device/+/state", "dorm/campus/#"],
)
def test_shared_prefixes_filter_with_share_and_group(topic_filter: str) -> None:
    assert shared("gateway", topic_filter) == f"$share/gateway/{topic_filter}"


@pytest.mark.parametrize("group", INVALID_SEGMENTS)
def test_shared_rejects_invalid_group_naming_it(group: str) -> None:
    with pytest.raises(ValueError, match=r"^shared subscription group "):
        shared(group, "dorm/campus/+/gate/+/event")


# ---------------------------------------------------------------- payload models

SAMPLES: dict[GateChannel, WireModel] = {
    GateChannel.EVENT: AccessEvent(
        event_id="a" * 32,
        ts=TS,
        producer="gate:campus/B1/B1-main",
        site="campus",
        building="B1",
        gate_id="B1-main",
        direction="in",
        decision="granted",
        method="face",
        person_id="S001",
        reason="granted",
        flags=["after_curfew"],
        distance=0.31,
        margin=0.2,
        faces_in_view=1,
        frames_used=2,
        latency=LatencyBreakdown(detect_ms=40.5, encode_ms=80.0, match_ms=0.3, decide_ms=0.1),
        seq=17,
    ),
    GateChannel.DOOR: DoorEvent(
        event_id="b" * 32,
        ts=TS,
        producer="gate:campus/B1/B1-main",
        site="campus",
        building="B1",
        gate_id="B1-main",
        kind="held_open",
        open_for_s=31.5,
        seq=18,
    ),
    GateChannel.AVAILABILITY: Availability(
        producer="gate:campus/B1/B1-main", state="offline", ts=TS
    ),
    GateChannel.HEARTBEAT: Heartbeat(
        event_id="c" * 32,
        ts=TS,
        producer="gate:campus/B1/B1-main",
        fps=14.8,
        last_frame_age_s=0.07,
        source_healthy=True,
        source_detail="camera 0",
        outbox_depth=3,
        gallery_version=5,
        face_path="ok",
        uptime_s=3600.0,
        alarms=["door_held_open"],
    ),
    GateChannel.GALLERY: GalleryUpdate(
        event_id="d" * 32,
        ts=TS,
        producer="gateway",
        version=6,
        correlation_id="corr-1",
        blob_b64="AAECAw==",
    ),
    GateChannel.GALLERY_ACK: GalleryAck(
        event_id="e" * 32,
        ts=TS,
        producer="gate:campus/B1/B1-main",
        correlation_id="corr-1",
        version=6,
        applied=False,
        error="bad signature",
        erased_person_ids=["S002"],
    ),
    GateChannel.COMMAND: Command(
        event_id="f" * 32,
        ts=TS,
        producer="gateway",
        correlation_id="corr-2",
        command="hold_open",
        duration_s=600.0,
        reason="fire alarm",
    ),
    GateChannel.COMMAND_RESULT: CommandResult(
        event_id="0" * 32,
        ts=TS,
        producer="gate:campus/B1/B1-main",
        correlation_id="corr-2",
        ok=True,
        detail="held open",
    ),
    GateChannel.CARD: CardSwipe(
        event_id="1" * 32, ts=TS, producer="reader:B1-main", card_uid="04A1B2C3D4", pin_entry=None
    ),
    GateChannel.SECURITY: SecurityEvent(
        event_id="2" * 32,
        ts=TS,
        producer="gate:campus/B1/B1-main",
        site="campus",
        building="B1",
        gate_id="B1-main",
        kind="replayed",
        target="command",
        detail="nonce already used: a replayed command",
        command="unlock",
        seq=42,
    ),
}
CHANNELS_WITH_EVENT_TS = [c for c, m in SAMPLES.items() if "event_id" in type(m).model_fields]


def topic_of(channel: GateChannel) -> str:
    return gate_topic(GATE, channel)


def wire_dict(channel: GateChannel) -> dict[str, Any]:
    """The sample payload of a channel as the decoded JSON object."""
    decoded: dict[str, Any] = json.loads(SAMPLES[channel].to_bytes())
    return decoded


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def test_every_gate_model_has_a_sample() -> None:
    """Guards the round-trip tests: a new channel model must get a sample here."""
    assert set(SAMPLES) == set(GATE_MODELS)
    assert all(type(SAMPLES[c]) is GATE_MODELS[c] for c in SAMPLES)


@pytest.mark.parametrize(
    ("channel", "model"),
    [
        (GateChannel.EVENT, AccessEvent),
        (GateChannel.DOOR, DoorEvent),
        (GateChannel.AVAILABILITY, Availability),
        (GateChannel.HEARTBEAT, Heartbeat),
        (GateChannel.GALLERY, GalleryUpdate),
        (GateChannel.GALLERY_ACK, GalleryAck),
        (GateChannel.COMMAND, Command),
        (GateChannel.COMMAND_RESULT, CommandResult),
        (GateChannel.CARD, CardSwipe),
    ],
)
def test_model_for_maps_each_gate_channel_to_its_model(
    channel: GateChannel, model: type[WireModel]
) -> None:
    assert model_for(topic_of(channel)) is model


@pytest.mark.parametrize("topic", [gate_topic(GATE, GateChannel.CONTACT)])
def test_model_for_rejects_topic_without_payload_model(topic: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(f"topic {topic!r} has no payload model")):
        model_for(topic)


@pytest.mark.parametrize(
    "topic", ["home/x/y/z/w/v", "dorm/campus/B1/gate/B1-main/bogus", "dorm/campus/B1/gate/B1-main"]
)
def test_message_on_foreign_topic_is_a_payload_error_quoting_the_topic(topic: str) -> None:
    with pytest.raises(PayloadError) as excinfo:
        parse_message(topic, SAMPLES[GateChannel.EVENT].to_bytes())
    assert repr(topic) in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_message_on_topic_with_invalid_segment_names_the_topic() -> None:
    topic = "dorm/cam pus/B1/gate/B1-main/event"
    with pytest.raises(PayloadError, match=re.escape(repr(topic))):
        parse_message(topic, SAMPLES[GateChannel.EVENT].to_bytes())


@pytest.mark.parametrize("channel", list(SAMPLES))
def test_payload_round_trips_through_to_bytes_and_parse_message(channel: GateChannel) -> None:
    original = SAMPLES[channel]
    parsed = parse_message(topic_of(channel), original.to_bytes())
    assert type(parsed) is type(original)
    assert parsed == original


@pytest.mark.parametrize("channel", list(SAMPLES))
def test_wire_json_carries_schema_under_the_key_schema(channel: GateChannel) -> None:
    payload = wire_dict(channel)
    assert payload["schema"] == SCHEMA_VERSION
    assert "schema_version" not in payload


@pytest.mark.parametrize("channel", CHANNELS_WITH_EVENT_TS)
def test_events_get_distinct_ids_and_a_utc_timestamp_by_default(channel: GateChannel) -> None:
    payload = wire_dict(channel)
    del payload["event_id"], payload["ts"]
    first = parse_message(topic_of(channel), encode(payload))
    second = parse_message(topic_of(channel), encode(payload))
    assert first.event_id != second.event_id  # type: ignore[attr-defined]
    assert first.ts.tzinfo is UTC  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("channel", "sender"),
    [
        (GateChannel.DOOR, GateChannel.EVENT),
        (GateChannel.EVENT, GateChannel.DOOR),
        (GateChannel.COMMAND, GateChannel.COMMAND_RESULT),
        (GateChannel.GALLERY, GateChannel.GALLERY_ACK),
        (GateChannel.HEARTBEAT, GateChannel.AVAILABILITY),
    ],
)
def test_payload_of_another_channel_is_rejected(channel: GateChannel, sender: GateChannel) -> None:
    with pytest.raises(PayloadError, match=re.escape(topic_of(channel))):
        parse_message(topic_of(channel), SAMPLES[sender].to_bytes())


@pytest.mark.parametrize("channel", list(SAMPLES))
@pytest.mark.parametrize("extra", ["bogus", "Event_ID", "schema_version", "topic"])
def test_unknown_key_is_rejected_naming_it(channel: GateChannel, extra: str) -> None:
    payload = wire_dict(channel) | {extra: 1}
    with pytest.raises(PayloadError, match=rf"{extra}: Extra inputs are not permitted"):
        parse_message(topic_of(channel), encode(payload))


def test_unknown_key_in_nested_latency_is_rejected_with_its_path() -> None:
    payload = wire_dict(GateChannel.EVENT)
    payload["latency"]["gpu_ms"] = 3.0
    with pytest.raises(PayloadError, match=r"latency\.gpu_ms: Extra inputs are not permitted"):
        parse_message(topic_of(GateChannel.EVENT), encode(payload))


@pytest.mark.parametrize("channel", list(SAMPLES))
@pytest.mark.parametrize(
    "naive", ["2024-03-06T12:00:00", "2024-03-06T12:00:00.123456", "2024-03-06 12:00:00"]
)
def test_naive_timestamp_is_rejected(channel: GateChannel, naive: str) -> None:
    payload = wire_dict(channel) | {"ts": naive}
    with pytest.raises(PayloadError, match=r"ts: .*timestamp must carry a timezone"):
        parse_message(topic_of(channel), encode(payload))


@pytest.mark.parametrize("channel", list(SAMPLES))
@pytest.mark.parametrize(
    "stamp",
    [
        "2024-03-06T12:00:00+08:00",
        "2024-03-06T04:00:00Z",
        "2024-03-06T04:00:00+00:00",
        "2024-03-05T22:30:00-05:30",
        "2024-03-06T05:00:00+01:00",
    ],
)
def test_timestamp_with_any_offset_is_normalised_to_utc(channel: GateChannel, stamp: str) -> None:
    payload = wire_dict(channel) | {"ts": stamp}
    parsed = parse_message(topic_of(channel), encode(payload))
    ts = parsed.ts  # type: ignore[attr-defined]
    assert ts == TS
    assert ts.tzinfo is UTC


def test_model_built_in_code_rejects_naive_and_normalises_aware_timestamps() -> None:
    with pytest.raises(ValidationError, match="timestamp must carry a timezone"):
        Availability(producer="p", state="online", ts=datetime(2024, 3, 6, 12, 0))
    plus_eight = timezone(timedelta(hours=8))
    event = Availability(
        producer="p", state="online", ts=datetime(2024, 3, 6, 12, 0, tzinfo=plus_eight)
    )
    assert event.ts == TS
    assert event.ts is not None and event.ts.tzinfo is UTC


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_timestamp_out_of_utc_range_is_a_payload_error(stamp: str) -> None:
    payload = wire_dict(GateChannel.HEARTBEAT) | {"ts": stamp}
    with pytest.raises(PayloadError, match="ts"):
        parse_message(topic_of(GateChannel.HEARTBEAT), encode(payload))


@pytest.mark.parametrize("channel", list(SAMPLES))
@pytest.mark.parametrize("schema", [SCHEMA_VERSION + 1, SCHEMA_VERSION + 100, 10**30])
def test_schema_newer_than_supported_is_rejected(channel: GateChannel, schema: int) -> None:
    payload = wire_dict(channel) | {"schema": schema}
    topic = topic_of(channel)
    expected = f"topic {topic!r}: schema {schema} is newer than supported {SCHEMA_VERSION}"
    with pytest.raises(PayloadError, match=re.escape(expected)):
        parse_message(topic, encode(payload))


@pytest.mark.parametrize("schema", [0, -1])
def test_schema_below_one_is_rejected(schema: int) -> None:
    payload = wire_dict(GateChannel.EVENT) | {"schema": schema}
    with pytest.raises(PayloadError, match=r"schema: Input should be greater than or equal to 1"):
        parse_message(topic_of(GateChannel.EVENT), encode(payload))


@pytest.mark.parametrize(
    ("channel", "field", "value"),
    [
        (GateChannel.EVENT, "decision", "maybe"),
        (GateChannel.EVENT, "direction", "up"),
        (GateChannel.EVENT, "method", "retina"),
        (GateChannel.EVENT, "distance", -0.1),
        (GateChannel.EVENT, "seq", -1),
        (GateChannel.EVENT, "reason", ""),
        (GateChannel.EVENT, "event_id", "short"),
        (GateChannel.EVENT, "event_id", "x" * 65),
        (GateChannel.EVENT, "flags", "after_curfew"),
        (GateChannel.EVENT, "ts", "yesterday"),
        (GateChannel.DOOR, "kind", "exploded"),
        (GateChannel.DOOR, "open_for_s", -1),
        (GateChannel.AVAILABILITY, "state", "sleeping"),
        (GateChannel.HEARTBEAT, "fps", "fast"),
        (GateChannel.HEARTBEAT, "fps", float("nan")),
        (GateChannel.HEARTBEAT, "face_path", "broken"),
        (GateChannel.HEARTBEAT, "source_healthy", "perhaps"),
        (GateChannel.GALLERY, "version", 0),
        (GateChannel.GALLERY, "blob_b64", ""),
        (GateChannel.GALLERY_ACK, "applied", None),
        (GateChannel.COMMAND, "command", "selfdestruct"),
        (GateChannel.COMMAND, "duration_s", 0),
        (GateChannel.COMMAND, "duration_s", 24 * 3600 + 1),
        (GateChannel.COMMAND, "correlation_id", ""),
        (GateChannel.COMMAND_RESULT, "ok", [True]),
        (GateChannel.CARD, "card_uid", "x" * 65),
        (GateChannel.CARD, "producer", ""),
    ],
)
def test_payload_error_names_the_topic_model_and_bad_field(
    channel: GateChannel, field: str, value: object
) -> None:
    payload = wire_dict(channel) | {field: value}
    topic = topic_of(channel)
    with pytest.raises(PayloadError) as excinfo:
        parse_message(topic, encode(payload))
    message = str(excinfo.value)
    assert message.startswith(f"topic {topic!r}: invalid {type(SAMPLES[channel]).__name__}: ")
    assert re.search(rf"(^|; ){field}: ", message.split(": ", 2)[2]), message


@pytest.mark.parametrize("channel", list(SAMPLES))
def test_missing_required_producer_is_named(channel: GateChannel) -> None:
    payload = wire_dict(channel)
    del payload["producer"]
    with pytest.raises(PayloadError, match=r"producer: Field required"):
        parse_message(topic_of(channel), encode(payload))


def test_payload_error_lists_at_most_five_problems() -> None:
    with pytest.raises(PayloadError) as excinfo:
        parse_message(topic_of(GateChannel.EVENT), b"{}")
    assert str(excinfo.value).count("Field required") == 5


def _raw_number(channel: GateChannel, field: str, literal: str) -> bytes:
    """The sample payload with one field replaced by a raw JSON number literal."""
    payload = wire_dict(channel) | {field: "__RAW__"}
    return encode(payload).replace(b'"__RAW__"', literal.encode())


@pytest.mark.parametrize(
    ("channel", "field", "literal"),
    [
        (GateChannel.HEARTBEAT, "fps", "Infinity"),
        (GateChannel.HEARTBEAT, "fps", "1e400"),
        (GateChannel.HEARTBEAT, "uptime_s", "Infinity"),
        (GateChannel.DOOR, "open_for_s", "1e999"),
        (GateChannel.EVENT, "distance", "Infinity"),
    ],
)
def test_non_finite_number_is_rejected(channel: GateChannel, field: str, literal: str) -> None:
    with pytest.raises(PayloadError, match=field):
        parse_message(topic_of(channel), _raw_number(channel, field, literal))


def _deep_list(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


GARBAGE: list[Any] = [
    pytest.param(b"", id="empty"),
    pytest.param(b" \n\t", id="whitespace"),
    pytest.param(b"\x00", id="nul"),
    pytest.param(b"\xff\xfe\xfd", id="not-utf8"),
    pytest.param(b"\xef\xbb\xbf{}", id="utf8-bom"),
    pytest.param('{"producer": "x"}'.encode("utf-16"), id="utf16"),
    pytest.param(b'{"producer": "\xff"}', id="invalid-utf8-in-string"),
    pytest.param(b'{"producer": "\\ud800"}', id="lone-surrogate"),
    pytest.param(b"null", id="null"),
    pytest.param(b"true", id="bool"),
    pytest.param(b"0", id="zero"),
    pytest.param(b"1e400", id="huge-float"),
    pytest.param(b"9" * 5000, id="5000-digit-int"),
    pytest.param(b"NaN", id="nan"),
    pytest.param(b'"hello"', id="string"),
    pytest.param(b"[]", id="empty-list"),
    pytest.param(b"[1, 2, 3]", id="list"),
    pytest.param(b'[{"producer": "x", "state": "online"}]', id="list-of-object"),
    pytest.param(b"{", id="unclosed"),
    pytest.param(b"}", id="close-only"),
    pytest.param(b'{"producer":', id="truncated"),
    pytest.param(b"{}", id="empty-object"),
    pytest.param(b"{} {}", id="two-objects"),
    pytest.param(b'{"producer": "x",}', id="trailing-comma"),
    pytest.param(b"{'producer': 'x'}", id="single-quotes"),
    pytest.param(b'{"schema": 1e400}', id="schema-huge-float"),
    pytest.param(b'{"schema": ' + b"9" * 5000 + b"}", id="schema-5000-digits"),
    pytest.param(b'{"schema": "one"}', id="schema-string"),
    pytest.param(b'{"ts": 1e300}', id="ts-huge-number"),
    pytest.param(b'{"ts": "not a date"}', id="ts-text"),
    pytest.param(b'{"producer": ["x"]}', id="producer-list"),
    pytest.param(b'{"producer": {"x": {"y": [null, {}]}}}', id="nested-junk"),
    pytest.param(_deep_list(100_000), id="deep-list"),
    pytest.param(_deep_object(5_000), id="deep-object"),
    pytest.param(b'{"k": ' + b"[1," * 20_000 + b"1" + b"]" * 20_000 + b"}", id="deep-value"),
    pytest.param(b'{"producer": "' + b"x" * 1_000_000 + b'"}', id="1MB-string"),
    pytest.param(random.Random(1).randbytes(512), id="random-bytes"),
    pytest.param(json.dumps({str(i): i for i in range(10_000)}).encode(), id="10k-keys"),
]


@pytest.mark.parametrize(
    "channel",
    [GateChannel.EVENT, GateChannel.AVAILABILITY, GateChannel.HEARTBEAT, GateChannel.COMMAND],
)
@pytest.mark.parametrize("payload", GARBAGE)
def test_garbage_payload_is_a_payload_error_never_another_exception(
    channel: GateChannel, payload: bytes
) -> None:
    topic = topic_of(channel)
    with pytest.raises(PayloadError) as excinfo:
        parse_message(topic, payload)
    assert str(excinfo.value).startswith(f"topic {topic!r}: ")


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        (GateChannel.EVENT, "seq"),
        (GateChannel.EVENT, "faces_in_view"),
        (GateChannel.HEARTBEAT, "outbox_depth"),
        (GateChannel.GALLERY, "version"),
    ],
)
def test_integer_too_long_to_parse_is_a_payload_error(channel: GateChannel, field: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(topic_of(channel))):
        parse_message(topic_of(channel), _raw_number(channel, field, "9" * 5000))


# ----------------------------------------------------------------------------- devices


def test_device_and_bridge_payloads_round_trip_on_their_topics() -> None:
    from contracts.models import BridgeHealth, DeviceState, DeviceTelemetry
    from contracts.topics import BridgeChannel, bridge_topic

    state = DeviceState(
        producer="bridge:campus/r1",
        site="campus",
        building="B1",
        room="R101",
        device_id="washer-1",
        kind="washer",
        status="running",
        faults=["leak"],
        remaining_s=1200.0,
    )
    telemetry = DeviceTelemetry(
        producer="bridge:campus/r1",
        site="campus",
        building="B1",
        room="R101",
        device_id="washer-1",
        kind="washer",
        power_w=523.4,
        energy_kwh=12.3,
    )
    health = BridgeHealth(
        producer="bridge:campus/r1",
        received=10,
        normalized=8,
        rejected=2,
        unknown_topic=0,
        devices=4,
        offline_devices=1,
        faulty_devices=1,
        uptime_s=5.0,
    )
    for topic, model in (
        (device_topic(DEVICE, DeviceChannel.STATE), state),
        (device_topic(DEVICE, DeviceChannel.TELEMETRY), telemetry),
        (bridge_topic("campus", "r1", BridgeChannel.HEALTH), health),
    ):
        assert parse_message(topic, model.to_bytes()) == model


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "broken"), ("kind", "toaster"), ("faults", ["melted"]), ("remaining_s", -1)],
)
def test_device_state_rejects_values_outside_the_contract(field: str, value: object) -> None:
    data = {
        "producer": "bridge:x",
        "site": "campus",
        "building": "B1",
        "room": "R101",
        "device_id": "washer-1",
        "kind": "washer",
        "status": "idle",
        field: value,
    }
    with pytest.raises(PayloadError, match=field):
        parse_message(device_topic(DEVICE, DeviceChannel.STATE), json.dumps(data).encode())


def test_bridge_topic_rejects_unknown_channel() -> None:
    with pytest.raises(ValueError, match="unknown bridge channel"):
        parse_topic("dorm/campus/bridge/r1/nonsense")
