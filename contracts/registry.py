"""Map from topic to payload model, and the one parse function consumers use."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from contracts.models import (
    SCHEMA_VERSION,
    AccessEvent,
    AlertNotice,
    Availability,
    BridgeHealth,
    CardSwipe,
    Command,
    CommandResult,
    DeviceState,
    DeviceTelemetry,
    DoorEvent,
    GalleryAck,
    GalleryUpdate,
    Heartbeat,
    SecurityEvent,
    WireModel,
)
from contracts.topics import BridgeChannel, DeviceChannel, GateChannel, GatewayChannel, parse_topic

GATE_MODELS: dict[GateChannel, type[WireModel]] = {
    GateChannel.EVENT: AccessEvent,
    GateChannel.DOOR: DoorEvent,
    GateChannel.AVAILABILITY: Availability,
    GateChannel.HEARTBEAT: Heartbeat,
    GateChannel.GALLERY: GalleryUpdate,
    GateChannel.GALLERY_ACK: GalleryAck,
    GateChannel.COMMAND: Command,
    GateChannel.COMMAND_RESULT: CommandResult,
    GateChannel.CARD: CardSwipe,
    GateChannel.SECURITY: SecurityEvent,
}


DEVICE_MODELS: dict[DeviceChannel, type[WireModel]] = {
    DeviceChannel.STATE: DeviceState,
    DeviceChannel.TELEMETRY: DeviceTelemetry,
    DeviceChannel.AVAILABILITY: Availability,
}

GATEWAY_MODELS: dict[GatewayChannel, type[WireModel]] = {
    GatewayChannel.ALERTS: AlertNotice,
}

BRIDGE_MODELS: dict[BridgeChannel, type[WireModel]] = {
    BridgeChannel.AVAILABILITY: Availability,
    BridgeChannel.HEALTH: BridgeHealth,
}


class PayloadError(ValueError):
    """A message that does not satisfy the contract; the text says what and where."""


def model_for(topic: str) -> type[WireModel]:
    """The payload model of a topic, or PayloadError."""
    try:
        parsed = parse_topic(topic)
    except ValueError as exc:
        raise PayloadError(str(exc)) from exc
    model: type[WireModel] | None = None
    if parsed.kind == "gate":
        model = GATE_MODELS.get(GateChannel(parsed.channel))
    elif parsed.kind == "device":
        model = DEVICE_MODELS.get(DeviceChannel(parsed.channel))
    elif parsed.kind == "bridge":
        model = BRIDGE_MODELS.get(BridgeChannel(parsed.channel))
    elif parsed.kind == "gateway":
        model = GATEWAY_MODELS.get(GatewayChannel(parsed.channel))
    if model is not None:
        return model
    raise PayloadError(f"topic {topic!r} has no payload model")


M = TypeVar("M", bound=WireModel)


def parse_payload(model: type[M], payload: bytes, *, where: str = "payload") -> M:
    """Validate JSON bytes against a model; PayloadError lists each bad field."""
    try:
        parsed = model.model_validate_json(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise PayloadError(f"{where}: invalid {model.__name__}: {problems}") from exc
    if parsed.schema_version > SCHEMA_VERSION:
        raise PayloadError(
            f"{where}: schema {parsed.schema_version} is newer than supported {SCHEMA_VERSION}"
        )
    return parsed


def parse_message(topic: str, payload: bytes) -> WireModel:
    """Validate a message by its topic; PayloadError says what was wrong and on which topic."""
    return parse_payload(model_for(topic), payload, where=f"topic {topic!r}")
