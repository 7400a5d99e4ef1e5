"""What the gate tells the gateway: access, door and security events and answers, via the outbox.

Every message goes through the durable publisher with its outbox sequence number filled in, so
the gateway sees one gap-free sequence per gate. Invalid input is counted and logged here too:
the count goes into every heartbeat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, TypeVar

from contracts.access import GateInfo, Method
from contracts.models import (
    AccessEvent,
    CommandResult,
    DoorEvent,
    GalleryAck,
    LatencyBreakdown,
    SecurityEvent,
    WireModel,
)
from contracts.registry import PayloadError, parse_payload
from contracts.topics import GateAddress, GateChannel, gate_topic
from edge.gate.door_logic import DoorEventOut
from edge.gate.model import AccessDecision
from edge.mqtt import ReceivedMessage
from edge.publisher import ReliablePublisher

log = logging.getLogger(__name__)

OutboxMessage = AccessEvent | DoorEvent | SecurityEvent | GalleryAck | CommandResult
AttackTarget = Literal["command", "gallery"]
AttackKind = Literal["unsigned", "unknown_key", "bad_signature", "replayed", "future_dated"]
M = TypeVar("M", bound=WireModel)


class GateReporter:
    """Builds the gate's outgoing messages and queues them, numbered, in the durable outbox."""

    def __init__(self, producer: str, gate: GateInfo, publisher: ReliablePublisher) -> None:
        self.producer = producer
        self.gate = gate
        self.publisher = publisher
        self.addr = GateAddress(gate.site, gate.building, gate.gate_id)
        self.rejected = 0  # invalid input messages so far

    def topic(self, channel: GateChannel) -> str:
        """This gate's topic for a channel."""
        return gate_topic(self.addr, channel)

    def send(self, channel: GateChannel, message: OutboxMessage) -> None:
        """Queue a message for this gate's channel in the outbox."""
        self.publisher.send(self.topic(channel), _numbered(message))

    def reject(self, what: str, exc: Exception) -> None:
        """Count and log an invalid input; the daemon carries on."""
        self.rejected += 1
        log.warning("%s rejected: %s", what, exc)

    def parse(self, model: type[M], msg: ReceivedMessage, what: str) -> M | None:
        """The message's payload as `model`, or None once it is rejected as `what`."""
        try:
            return parse_payload(model, msg.payload, where=f"topic {msg.topic!r}")
        except PayloadError as exc:
            self.reject(what, exc)
            return None

    def access(
        self,
        decision: AccessDecision,
        method: Method,
        *,
        distance: float | None = None,
        margin: float | None = None,
        faces: int = 0,
        frames: int = 0,
        latency: LatencyBreakdown | None = None,
    ) -> AccessEvent:
        """Report an access decision; returns the event sent."""
        event = AccessEvent(
            producer=self.producer,
            site=self.gate.site,
            building=self.gate.building,
            gate_id=self.gate.gate_id,
            direction=self.gate.direction.value,
            decision="granted" if decision.granted else "denied",
            method=method.value,
            person_id=decision.person_id,
            reason=decision.reason.value,
            flags=sorted(f.value for f in decision.flags),
            distance=None if distance is None else round(max(0.0, distance), 4),
            margin=None if margin is None else round(max(0.0, min(margin, 10.0)), 4),
            faces_in_view=faces,
            frames_used=frames,
            latency=latency or LatencyBreakdown(),
        )
        self.send(GateChannel.EVENT, event)
        log.info(
            "access %s gate=%s method=%s person=%s reason=%s event_id=%s",
            event.decision,
            self.gate.gate_id,
            method.value,
            decision.person_id,
            decision.reason.value,
            event.event_id,
        )
        return event

    def door(self, events: list[DoorEventOut]) -> None:
        """Report what the door contact monitor saw."""
        for out in events:
            event = DoorEvent(
                producer=self.producer,
                site=self.gate.site,
                building=self.gate.building,
                gate_id=self.gate.gate_id,
                kind=out.kind,
                open_for_s=None if out.open_for_s is None else round(out.open_for_s, 2),
            )
            level = logging.WARNING if out.kind in ("held_open", "forced_open") else logging.INFO
            log.log(level, "door %s at gate %s", out.kind, self.gate.gate_id)
            self.send(GateChannel.DOOR, event)

    def attack(
        self, target: AttackTarget, kind: AttackKind, detail: str, command: str | None
    ) -> None:
        """Log a forged or replayed message and report it to the gateway (an alert there)."""
        log.warning(
            "SECURITY: %s refused at gate %s as %s: %s", target, self.gate.gate_id, kind, detail
        )
        event = SecurityEvent(
            producer=self.producer,
            site=self.gate.site,
            building=self.gate.building,
            gate_id=self.gate.gate_id,
            kind=kind,
            target=target,
            detail=detail[:500],
            command=command,
        )
        self.send(GateChannel.SECURITY, event)


def _numbered(message: OutboxMessage) -> Callable[[int | None], bytes]:
    """The message's bytes with its outbox sequence filled in when it is stored.

    Every outbox message carries the number, so the gateway sees one gap-free sequence.
    """
    return lambda seq: message.model_copy(update={"seq": seq}).to_bytes()
