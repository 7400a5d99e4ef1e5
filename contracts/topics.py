"""MQTT topic builders and parsers: the only place topic strings are assembled.

Layout::

    dorm/<site>/<building>/gate/<gate_id>/<channel>
    dorm/<site>/<building>/room/<room>/device/<device_id>/<channel>
    dorm/<site>/bridge/<bridge_id>/<channel>
    dorm/<site>/gateway/<channel>
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, fields
from enum import StrEnum

ROOT = "dorm"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class GateChannel(StrEnum):
    """What a gate topic carries."""

    EVENT = "event"  # access events, gate -> gateway, QoS 1
    DOOR = "door"  # door events, gate -> gateway, QoS 1
    AVAILABILITY = "availability"  # retained, QoS 1, last will
    HEARTBEAT = "heartbeat"  # health, QoS 0
    GALLERY = "gallery"  # gallery updates, gateway -> gate, QoS 1, retained
    GALLERY_ACK = "gallery/ack"  # gate -> gateway
    COMMAND = "command"  # gateway -> gate, QoS 1
    COMMAND_RESULT = "command/result"  # gate -> gateway, QoS 1
    SECURITY = "security"  # forged/replayed commands the gate refused, gate -> gateway, QoS 1
    CARD = "card"  # card reader / keypad -> gate, QoS 1
    CONTACT = "contact"  # door contact sensor -> gate


class BridgeChannel(StrEnum):
    """What a device bridge's own topics carry."""

    AVAILABILITY = "availability"  # retained, QoS 1, last will
    HEALTH = "health"  # counters, QoS 0


class GatewayChannel(StrEnum):
    """What a gateway's own topics carry (between gateway replicas)."""

    ALERTS = "alerts"  # alert changes, so every replica's live consoles see all of them, QoS 0


class DeviceChannel(StrEnum):
    """What a service-room device topic carries."""

    STATE = "state"
    TELEMETRY = "telemetry"
    AVAILABILITY = "availability"


def check_segment(value: str, what: str) -> str:
    """Return value if it is a safe topic segment, else raise ValueError naming it."""
    if not _SEGMENT.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid topic segment: use 1-64 letters, digits, '_', '-', "
            "'.', starting with a letter or digit (no '/', '+', '#', spaces)"
        )
    return value


def _check_fields(address: GateAddress | DeviceAddress) -> None:
    """Check every field of an address as a topic segment named after it ('gate_id': 'gate id')."""
    for f in fields(address):
        check_segment(getattr(address, f.name), f.name.replace("_", " "))


@dataclass(frozen=True, slots=True)
class GateAddress:
    """Where a gate's topics are; each part a valid topic segment."""

    site: str
    building: str
    gate_id: str

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    """Where a service-room device's topics are; each part a valid topic segment."""

    site: str
    building: str
    room: str
    device_id: str

    def __post_init__(self) -> None:
        _check_fields(self)


def _join(*segments: str) -> str:
    """`dorm/<segment>/...`: a dormguard topic or filter from its segments after the root."""
    return "/".join((ROOT, *segments))


def gate_topic(addr: GateAddress, channel: GateChannel) -> str:
    """Topic of one gate channel."""
    return _join(addr.site, addr.building, "gate", addr.gate_id, channel.value)


def device_topic(addr: DeviceAddress, channel: DeviceChannel) -> str:
    """Topic of one device channel."""
    return _join(
        addr.site, addr.building, "room", addr.room, "device", addr.device_id, channel.value
    )


def bridge_topic(site: str, bridge_id: str, channel: BridgeChannel) -> str:
    """Topic of one device-bridge channel."""
    site = check_segment(site, "site")
    return _join(site, "bridge", check_segment(bridge_id, "bridge id"), channel.value)


def gate_filter(site: str, channel: GateChannel, building: str = "+", gate_id: str = "+") -> str:
    """Subscription filter for one channel of many gates ('+' = any)."""
    check_segment(site, "site")
    for value, what in ((building, "building"), (gate_id, "gate id")):
        if value != "+":
            check_segment(value, what)
    return _join(site, building, "gate", gate_id, channel.value)


def device_filter(site: str, channel: DeviceChannel) -> str:
    """Subscription filter for one channel of every device of a site."""
    return _join(check_segment(site, "site"), "+", "room", "+", "device", "+", channel.value)


def bridge_filter(site: str, channel: BridgeChannel) -> str:
    """Subscription filter for one channel of every device bridge of a site."""
    return _join(check_segment(site, "site"), "bridge", "+", channel.value)


def gateway_topic(site: str, channel: GatewayChannel) -> str:
    """Topic of one gateway channel of a site."""
    return _join(check_segment(site, "site"), "gateway", channel.value)


def shared(group: str, topic_filter: str) -> str:
    """Shared-subscription form of a filter, so gateway replicas split the load."""
    check_segment(group, "shared subscription group")
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """The parts of a dormguard topic, as `parse_topic` splits it."""

    kind: str  # "gate", "device", "bridge" or "gateway"
    site: str
    building: str
    channel: str
    gate_id: str | None = None
    room: str | None = None
    device_id: str | None = None


_GATE_CHANNELS = frozenset(c.value for c in GateChannel)
_BRIDGE_CHANNELS = frozenset(c.value for c in BridgeChannel)
_DEVICE_CHANNELS = frozenset(c.value for c in DeviceChannel)
_GATEWAY_CHANNELS = frozenset(c.value for c in GatewayChannel)


@functools.lru_cache(maxsize=65536)
def parse_topic(topic: str) -> ParsedTopic:
    """Split a dormguard topic into its parts; ValueError says what is wrong and names it.

    Cached: a site has a bounded set of topics and ingest parses each message's topic.
    """
    try:
        return _parse_topic(topic)
    except ValueError as exc:
        if repr(topic) in str(exc):
            raise
        raise ValueError(f"topic {topic!r}: {exc}") from exc


def _parse_topic(topic: str) -> ParsedTopic:
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == ROOT and parts[2] == "gateway":
        if parts[3] not in _GATEWAY_CHANNELS:
            raise ValueError(f"topic {topic!r}: unknown gateway channel {parts[3]!r}")
        return ParsedTopic("gateway", check_segment(parts[1], "site"), "", parts[3])
    if len(parts) < 5 or parts[0] != ROOT:
        raise ValueError(f"topic {topic!r} is not a dormguard topic (expected '{ROOT}/<site>/...')")
    site, building = parts[1], parts[2]
    if parts[3] == "gate" and len(parts) >= 6:
        channel = "/".join(parts[5:])
        if channel not in _GATE_CHANNELS:
            raise ValueError(f"topic {topic!r}: unknown gate channel {channel!r}")
        addr = GateAddress(site, building, parts[4])
        return ParsedTopic("gate", addr.site, addr.building, channel, gate_id=addr.gate_id)
    if parts[2] == "bridge" and len(parts) == 5:
        if parts[4] not in _BRIDGE_CHANNELS:
            raise ValueError(f"topic {topic!r}: unknown bridge channel {parts[4]!r}")
        check_segment(site, "site")
        check_segment(parts[3], "bridge id")
        return ParsedTopic("bridge", site, "", parts[4], device_id=parts[3])
    if parts[3] == "room" and len(parts) == 8 and parts[5] == "device":
        channel = parts[7]
        if channel not in _DEVICE_CHANNELS:
            raise ValueError(f"topic {topic!r}: unknown device channel {channel!r}")
        daddr = DeviceAddress(site, building, parts[4], parts[6])
        return ParsedTopic(
            "device", site, building, channel, room=daddr.room, device_id=daddr.device_id
        )
    raise ValueError(f"topic {topic!r} does not match any dormguard topic layout")
