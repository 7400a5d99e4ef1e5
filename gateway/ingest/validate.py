"""Raw messages to wire models: parsed against contracts/ and checked against their topic.

What fails becomes a dead letter with the reason; nothing in a payload can stop ingest.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.models import (
    AccessEvent,
    DeviceState,
    DeviceTelemetry,
    DoorEvent,
    SecurityEvent,
    WireModel,
)
from contracts.registry import PayloadError, parse_message
from contracts.topics import ParsedTopic, parse_topic
from gateway.ingest.batch import Inbound

Valid = tuple[Inbound, ParsedTopic, WireModel]
"""A message that parsed, with its topic and payload model."""


def validate(batch: Sequence[Inbound]) -> tuple[list[Valid], list[tuple[Inbound, str]]]:
    """The batch's valid messages, and the others with the reason each is refused."""
    valid: list[Valid] = []
    dead: list[tuple[Inbound, str]] = []
    for msg in batch:
        try:
            parsed = parse_topic(msg.topic)
            model = parse_message(msg.topic, msg.payload)
            check_source(parsed, model)  # before dedup: a forged id is still a forgery
        except (PayloadError, ValueError) as exc:
            dead.append((msg, str(exc)))
            continue
        valid.append((msg, parsed, model))
    return valid, dead


def check_source(topic: ParsedTopic, model: WireModel) -> None:
    """A producer may only report as itself: the payload must name the gate or device of its
    topic (the broker's ACL ties each account to its own topics). ValueError says what differs.
    """
    if isinstance(model, AccessEvent | DoorEvent | SecurityEvent):
        named = (model.site, model.building, model.gate_id)
        if (topic.site, topic.building, topic.gate_id) != named:
            raise ValueError(
                f"payload names gate {'/'.join(named)} but was published on the topic of "
                f"{topic.site}/{topic.building}/{topic.gate_id}"
            )
    elif isinstance(model, DeviceState | DeviceTelemetry):
        device = (model.site, model.building, model.room, model.device_id)
        if (topic.site, topic.building, topic.room, topic.device_id) != device:
            raise ValueError(
                f"payload names device {'/'.join(device)} but was published on another "
                "device's topic"
            )
