"""One validated, fresh message to its place: the store, the alert rules, the outcome's lists.

Each kind of message is stored (``gateway.ingest.store``), shown to the rules that watch it
(inline) or written to the rule journal for the elected evaluator (gateway.alerts.evaluator),
and turned into time-series points; gallery acks, command results and other replicas' alert
notices are collected for the caller to hand on after the commit.
"""

from __future__ import annotations

from datetime import datetime

from contracts.models import (
    AccessEvent,
    AlertNotice,
    Availability,
    BridgeHealth,
    CommandResult,
    DeviceState,
    DeviceTelemetry,
    DoorEvent,
    GalleryAck,
    Heartbeat,
    SecurityEvent,
    WireModel,
)
from contracts.topics import ParsedTopic
from gateway.alerts.rules.engine import AlertRules
from gateway.alerts.rules.feed import feed, reads
from gateway.domain.appliances import device_fields
from gateway.ingest.batch import BatchOutcome, Inbound
from gateway.ingest.store import (
    BatchWork,
    device_key,
    gate_key,
    store_device_state,
    store_door,
    store_heartbeat,
)
from gateway.services import Services
from gateway.students.watches import fire_watches
from gateway.timeseries.base import Point
from gateway.timeseries.mapping import points_for


class Dispatcher:
    """Stores each message of a batch and runs the alert rules over it (inline), or writes what
    the rules read to the rule journal for the elected evaluator (``rules`` None)."""

    def __init__(
        self,
        services: Services,
        rules: AlertRules | None,
        *,
        series_for_events: bool = True,
    ) -> None:
        self._services = services
        self._rules = rules
        # Inline rules on a replica see only part of each gate's stream: no gap detection.
        self._gaps = services.config.mqtt.shared_group is None
        # Access and door events are in the SQL access log already; only a long-term sink
        # (InfluxDB) wants them as points too.
        self._series_for_events = series_for_events
        self._student_channels = tuple(services.config.notifications.students.channels)

    def handle(
        self,
        work: BatchWork,
        msg: Inbound,
        topic: ParsedTopic,
        model: WireModel,
        out: BatchOutcome,
    ) -> None:
        """Store one message, add the signals it raises; ValueError when it makes no sense."""
        now = work.now
        if isinstance(model, AccessEvent):
            work.add_access(model)
            self._sequence(work, topic, model.seq)
        elif isinstance(model, DoorEvent | SecurityEvent):
            if isinstance(model, DoorEvent):
                store_door(work, model)
            self._sequence(work, topic, model.seq)
        elif isinstance(model, Availability):
            self._availability(work, topic, model)
        elif isinstance(model, Heartbeat):
            store_heartbeat(work, topic, model)
        elif isinstance(model, DeviceState):
            stored = store_device_state(work, model)
            if stored is not None:
                device, before = stored
                out.devices.append(device_fields(device))
                out.watch_notices += fire_watches(
                    work.session, device, before, now, self._student_channels
                )
        elif isinstance(model, GalleryAck | CommandResult):
            key = gate_key(topic.site, topic.building, topic.gate_id or "")
            if isinstance(model, GalleryAck):
                out.gallery_acks.append((key, model))
            else:
                out.command_results.append((key, model))
            self._sequence(work, topic, model.seq)
        elif isinstance(model, AlertNotice):
            out.notices.append(model)
            return  # replica-to-replica chatter: not an event to count or store
        elif not isinstance(model, DeviceTelemetry | BridgeHealth):
            raise ValueError(f"no handler for {type(model).__name__}")
        if reads(model):
            if self._rules is not None:
                out.signals += feed(self._rules, topic, model, now, gaps=self._gaps)
            else:
                work.journal(msg.topic, msg.payload)
        out.points += self.points(topic, model, now)
        out.stored += 1

    def points(self, topic: ParsedTopic, model: WireModel, now: datetime) -> list[Point]:
        """The time-series points of one message (stored now, or earlier and delivered
        again: the same points then overwrite themselves where they arrived)."""
        if self._series_for_events or not isinstance(model, AccessEvent | DoorEvent):
            return points_for(model, topic=topic, received_at=now)
        return []

    def _sequence(self, work: BatchWork, topic: ParsedTopic, seq: int | None) -> None:
        """Keep a gate's highest outbox sequence (every message from its outbox carries it)."""
        if seq is None:
            return
        gate = work.gate(topic.site, topic.building, topic.gate_id or "")
        if gate.last_seq is None or seq > gate.last_seq:
            gate.last_seq = seq

    def _availability(self, work: BatchWork, topic: ParsedTopic, model: Availability) -> None:
        online = model.state == "online"
        if topic.kind == "gate" and topic.gate_id is not None:
            gate = work.gate(topic.site, topic.building, topic.gate_id)
            gate.online = online
            gate.availability_at = model.ts or work.now
        elif topic.kind == "device" and topic.room is not None and topic.device_id is not None:
            key = device_key(topic.site, topic.building, topic.room, topic.device_id)
            device = work.device(key)
            if device is not None:
                device.online = online
                device.updated_at = work.now
