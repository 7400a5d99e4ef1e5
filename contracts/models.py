"""Pydantic payload models: one model per message on the wire.

Every event carries a unique ``event_id``, a timezone-aware UTC ``ts``, the producer id and the
schema version. Consumers deduplicate by ``event_id`` (delivery is at-least-once).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# 2: commands and gallery updates carry a signature; gates report SecurityEvents.
# 3: access events may carry reason presentation_attack (the gate's liveness check).
# 4: the send_probe command and CommandResult.probe_b64 (wrong-match feedback); access events may
#    carry reason wrong_match.
SCHEMA_VERSION = 4


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (UTC expected)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp out of range") from None


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def new_event_id(at: datetime | None = None) -> str:
    """A globally unique event id that sorts by creation time (``at``, default now): 12 hex
    digits of Unix milliseconds, then 80 random bits (the layout of a version-7 UUID, as 32 hex
    digits).

    Time-ordered ids land at the end of the gateway's unique indexes (``access_log.event_id``,
    ``seen_events``) instead of at a random page: a database of millions of events ingests
    as fast as an empty one. Consumers must not read meaning into an id beyond uniqueness.
    """
    ms = time.time_ns() // 1_000_000 if at is None else int(at.timestamp() * 1000)
    return f"{ms:012x}{secrets.token_hex(10)}"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base of every payload: strict keys, immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema", ge=1)

    def to_bytes(self) -> bytes:
        """JSON encoding used on the wire."""
        return self.model_dump_json(by_alias=True).encode()


class Event(WireModel):
    """An event: unique id, UTC time, producer."""

    event_id: str = Field(default_factory=new_event_id, min_length=8, max_length=64)
    ts: UtcDatetime = Field(default_factory=utc_now)
    producer: str = Field(min_length=1, max_length=128)


class LatencyBreakdown(BaseModel):
    """Milliseconds spent per pipeline stage for the decision (face path)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    detect_ms: float = Field(default=0.0, ge=0)
    encode_ms: float = Field(default=0.0, ge=0)
    match_ms: float = Field(default=0.0, ge=0)
    liveness_ms: float = Field(default=0.0, ge=0, description="landmarks and the liveness check")
    decide_ms: float = Field(default=0.0, ge=0)
    first_seen_to_decision_ms: float = Field(default=0.0, ge=0)


class AccessEvent(Event):
    """One access decision at a gate."""

    site: str
    building: str
    gate_id: str
    direction: Literal["in", "out"]
    decision: Literal["granted", "denied"]
    method: Literal["face", "card", "pin"]
    person_id: str | None = None
    reason: str = Field(min_length=1, max_length=64)
    flags: list[str] = Field(default_factory=list)
    distance: float | None = Field(default=None, ge=0)
    margin: float | None = Field(default=None, ge=0)
    faces_in_view: int = Field(default=0, ge=0)
    frames_used: int = Field(default=0, ge=0)
    latency: LatencyBreakdown = Field(default_factory=LatencyBreakdown)
    seq: int | None = Field(
        default=None,
        ge=1,
        description="the gate's outbox sequence: strictly increasing per gate across restarts, "
        "shared by everything the gate sends through its outbox (access, door and security "
        "events, gallery acks, command results), so a consumer can spot gaps; null when the "
        "event could not be stored (disk full)",
    )


class DoorEvent(Event):
    """Door contact / actuator event."""

    site: str
    building: str
    gate_id: str
    kind: Literal["unlocked", "locked", "opened", "closed", "held_open", "forced_open"]
    open_for_s: float | None = Field(default=None, ge=0)
    seq: int | None = Field(default=None, ge=1, description="as AccessEvent.seq")


class Availability(WireModel):
    """Retained online/offline state; the offline form is the MQTT last will."""

    producer: str
    state: Literal["online", "offline"]
    ts: UtcDatetime | None = None


class Heartbeat(Event):
    """Periodic health of an edge daemon."""

    fps: float = Field(ge=0)
    last_frame_age_s: float | None = Field(default=None, ge=0)
    source_healthy: bool
    source_detail: str = ""
    outbox_depth: int = Field(ge=0)
    gallery_version: int = Field(ge=0)
    face_path: Literal["ok", "disabled"]
    face_path_detail: str = ""
    uptime_s: float = Field(ge=0)
    alarms: list[str] = Field(default_factory=list)
    rejected_messages: int = Field(default=0, ge=0, description="invalid inputs skipped so far")


class Signature(BaseModel):
    """The gateway's Ed25519 signature over the topic and the rest of the payload.

    ``contracts/signing.py`` says exactly what is covered; the gate refuses a command or gallery
    update without a signature by a key it trusts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(min_length=1, max_length=64, description="16 hex digits naming the key")
    nonce: str = Field(min_length=16, max_length=64, description="random, never used twice")
    value: str = Field(max_length=128, description="the Ed25519 signature, base64")


class GalleryUpdate(Event):
    """A new gallery version for a gate: the encrypted bundle, base64 (AES-256-GCM), signed."""

    version: int = Field(ge=1)
    correlation_id: str = Field(min_length=1, max_length=64)
    blob_b64: str = Field(min_length=1)
    signature: Signature | None = Field(
        default=None, description="required by gates; optional here so a gate can report it"
    )


class GalleryAck(Event):
    """A gate's answer to a gallery update."""

    correlation_id: str
    version: int = Field(ge=0)
    applied: bool
    error: str | None = None
    erased_person_ids: list[str] = Field(default_factory=list)
    seq: int | None = Field(default=None, ge=1, description="as AccessEvent.seq")


class Command(Event):
    """A command to a gate (unlock for a fire alarm, lock, ...)."""

    correlation_id: str = Field(min_length=1, max_length=64)
    command: Literal["unlock", "lock", "hold_open", "release", "ping", "send_probe"]
    duration_s: float | None = Field(default=None, gt=0, le=24 * 3600)
    reason: str = ""
    probe_event_id: str | None = Field(
        default=None,
        min_length=8,
        max_length=64,
        description="send_probe: the access event whose probe encoding the gate hands over",
    )
    signature: Signature | None = Field(
        default=None, description="required by gates; optional here so a gate can report it"
    )


class CommandResult(Event):
    """A gate's answer to a command."""

    correlation_id: str
    ok: bool
    detail: str = ""
    probe_b64: str | None = Field(
        default=None,
        max_length=2048,
        description="send_probe: the probe encoding sealed with the gallery key, base64 "
        "(contracts/gallery_crypto.py seal_probe); never in clear text",
    )
    seq: int | None = Field(default=None, ge=1, description="as AccessEvent.seq")


class SecurityEvent(Event):
    """A gate refused a command or gallery update as forged or replayed (raises an alert)."""

    site: str
    building: str
    gate_id: str
    kind: Literal["unsigned", "unknown_key", "bad_signature", "replayed", "future_dated"]
    target: Literal["command", "gallery"]
    detail: str = Field(default="", max_length=500)
    command: str | None = Field(default=None, max_length=32, description="what it asked for")
    seq: int | None = Field(default=None, ge=1, description="as AccessEvent.seq")


class CardSwipe(Event):
    """A card read or keypad entry from a reader next to a gate."""

    card_uid: str | None = Field(default=None, max_length=64)
    pin_entry: str | None = Field(default=None, max_length=80)


ApplianceKind = Literal["washer", "dryer", "water_dispenser", "hair_dryer"]
ApplianceStatus = Literal[
    "idle", "running", "finished", "in_use", "heating", "ready", "standby", "unknown"
]
ApplianceFault = Literal[
    "leak",
    "over_temperature",
    "over_current",
    "stuck",
    "heater_fault",
    "overrun",
    "offline",
    "filter_exhausted",
]


class DeviceState(Event):
    """The current state of one appliance (retained, QoS 1, published on every change)."""

    site: str
    building: str
    room: str
    device_id: str
    kind: ApplianceKind
    status: ApplianceStatus
    since: UtcDatetime | None = None
    faults: list[ApplianceFault] = Field(default_factory=list)
    online: bool = True
    power_w: float | None = None
    energy_kwh: float | None = Field(default=None, ge=0)
    temperature_c: float | None = None
    remaining_s: float | None = Field(default=None, ge=0)
    cycle_started: UtcDatetime | None = None
    sessions: int = Field(default=0, ge=0)
    filter_life_pct: float | None = Field(default=None, ge=0, le=100)


class DeviceTelemetry(Event):
    """A normalised reading of one appliance (QoS 0)."""

    site: str
    building: str
    room: str
    device_id: str
    kind: ApplianceKind
    power_w: float | None = None
    energy_kwh: float | None = Field(default=None, ge=0)
    voltage_v: float | None = Field(default=None, ge=0)
    current_a: float | None = Field(default=None, ge=0)
    temperature_c: float | None = None
    water_l: float | None = Field(default=None, ge=0)
    leak: bool | None = None
    door_open: bool | None = None


class BridgeHealth(Event):
    """Periodic health of a device bridge: what it received, normalised and rejected."""

    received: int = Field(ge=0)
    normalized: int = Field(ge=0)
    rejected: int = Field(ge=0)
    unknown_topic: int = Field(ge=0)
    devices: int = Field(ge=0)
    offline_devices: int = Field(ge=0)
    faulty_devices: int = Field(ge=0)
    uptime_s: float = Field(ge=0)
    last_rejection: str = ""


class AlertNotice(Event):
    """An alert change one gateway replica tells the others (for their live consoles)."""

    replica: str = Field(min_length=1, max_length=128)
    alert: dict[str, Any] = Field(description="the alert as the API shows it (docs/api.md)")
