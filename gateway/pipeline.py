"""From MQTT messages to stored state, alerts and time series: one batch, one transaction.

The ingest adapter (gateway.ingest) hands over batches of raw messages and acknowledges them to
the broker only after ``Pipeline.process`` returned, i.e. after the transaction committed. A crash
before that makes the broker redeliver; event ids already stored are dropped as duplicates.
Invalid payloads become dead letters with the reason; nothing in a payload can stop ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from contracts.models import (
    AccessEvent,
    Availability,
    BridgeHealth,
    CommandResult,
    DeviceState,
    DeviceTelemetry,
    DoorEvent,
    GalleryAck,
    Heartbeat,
    WireModel,
)
from contracts.registry import PayloadError, parse_message
from contracts.topics import ParsedTopic, parse_topic
from gateway.audit import chain_head, seal
from gateway.db.schema import (
    AccessRecord,
    DeadLetter,
    Device,
    DeviceStateRecord,
    DoorRecord,
    Gate,
    LateReturn,
    SeenEvent,
)
from gateway.db.schema import Presence as PresenceRow
from gateway.domain import occupancy
from gateway.domain.alerts import (
    AlertRules,
    Signal,
    bridge_originator,
    device_originator,
    gate_originator,
)
from gateway.services import Services
from gateway.timeseries.base import Point
from gateway.timeseries.mapping import points_for

log = logging.getLogger(__name__)

DEAD_LETTER_MAX_BYTES = 64 * 1024
AFTER_CURFEW_FLAG = "after_curfew"


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message as the broker delivered it."""

    topic: str
    payload: bytes
    retain: bool = False


@dataclass
class BatchOutcome:
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    signals: list[Signal] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    gallery_acks: list[tuple[str, GalleryAck]] = field(default_factory=list)
    command_results: list[tuple[str, CommandResult]] = field(default_factory=list)


def gate_key(site: str, building: str, gate_id: str) -> str:
    """The gates table key of one gate."""
    return f"{site}/{building}/{gate_id}"


def device_key(site: str, building: str, room: str, device_id: str) -> str:
    """The devices table key of one appliance."""
    return f"{site}/{building}/{room}/{device_id}"


class Pipeline:
    """Validates, deduplicates and stores batches; runs the alert rules over them."""

    def __init__(self, services: Services, rules: AlertRules) -> None:
        self._services = services
        self._rules = rules

    def process(self, batch: Sequence[Inbound]) -> BatchOutcome:
        """Store one batch in one transaction and apply the alerts it raises.

        Side effects that leave the database (time-series points, gallery acks, command results,
        WebSocket notifications) are returned or done only after the commit.
        """
        out = BatchOutcome()
        now = self._services.clock()
        valid: list[tuple[Inbound, ParsedTopic, WireModel]] = []
        dead: list[tuple[Inbound, str]] = []
        for msg in batch:
            try:
                parsed = parse_topic(msg.topic)
                model = parse_message(msg.topic, msg.payload)
            except (PayloadError, ValueError) as exc:
                dead.append((msg, str(exc)))
                continue
            valid.append((msg, parsed, model))

        alerts = self._services.alerts
        with self._services.sessions.begin() as session:
            fresh = self._drop_duplicates(session, valid, now, out)
            head: str | None = None
            for msg, parsed, model in fresh:
                try:
                    head = self._handle(session, msg, parsed, model, now, out, head)
                except ValueError as exc:  # a payload that is valid JSON but makes no sense
                    dead.append((msg, f"{msg.topic}: {exc}"))
            for msg, reason in dead:
                self._dead_letter(session, msg, reason, now)
            out.dead_letters = len(dead)
            views = alerts.apply_in(session, out.signals) if out.signals else []
        if views:
            alerts.broadcast(views)
        for msg, reason in dead:
            log.warning("dead letter on %s: %s", msg.topic, reason)
        return out

    # --- dedup ------------------------------------------------------------------------------

    def _drop_duplicates(
        self,
        session: Session,
        valid: list[tuple[Inbound, ParsedTopic, WireModel]],
        now: datetime,
        out: BatchOutcome,
    ) -> list[tuple[Inbound, ParsedTopic, WireModel]]:
        ids = [
            m.event_id
            for _, _, m in valid
            if isinstance(m, _DEDUPED) and getattr(m, "event_id", None) is not None
        ]
        seen: set[str] = set()
        for start in range(0, len(ids), 500):
            seen.update(
                session.scalars(
                    select(SeenEvent.event_id).where(
                        SeenEvent.event_id.in_(ids[start : start + 500])
                    )
                )
            )
        fresh = []
        for item in valid:
            model = item[2]
            if isinstance(model, _DEDUPED):
                event_id: str = model.event_id
                if event_id in seen:
                    out.duplicates += 1
                    continue
                seen.add(event_id)
                session.add(SeenEvent(event_id=event_id, received_at=now))
            fresh.append(item)
        return fresh

    # --- per message --------------------------------------------------------------------------

    def _handle(
        self,
        session: Session,
        msg: Inbound,
        topic: ParsedTopic,
        model: WireModel,
        now: datetime,
        out: BatchOutcome,
        head: str | None,
    ) -> str | None:
        rules = self._rules
        if isinstance(model, AccessEvent):
            self._check_source(topic, model.site, model.building, model.gate_id)
            if head is None:
                head = chain_head(session)
            head = self._store_access(session, model, now, head)
            out.signals += rules.on_access(model, now)
            if model.seq is not None:
                out.signals += rules.on_seq(
                    gate_originator(model.site, model.building, model.gate_id), model.seq, now
                )
        elif isinstance(model, DoorEvent):
            self._check_source(topic, model.site, model.building, model.gate_id)
            session.add(
                DoorRecord(
                    event_id=model.event_id,
                    ts=model.ts,
                    site=model.site,
                    building=model.building,
                    gate_id=model.gate_id,
                    kind=model.kind,
                    open_for_s=model.open_for_s,
                    seq=model.seq,
                )
            )
            out.signals += rules.on_door(model, now)
            if model.seq is not None:
                out.signals += rules.on_seq(
                    gate_originator(model.site, model.building, model.gate_id), model.seq, now
                )
        elif isinstance(model, Availability):
            out.signals += self._availability(session, topic, model, now)
        elif isinstance(model, Heartbeat):
            gate = self._gate(session, topic.site, topic.building, topic.gate_id or "")
            gate.last_heartbeat_at = model.ts
            gate.heartbeat = model.model_dump(mode="json", by_alias=True)
            gate.gallery_version = model.gallery_version
            out.signals += rules.on_heartbeat(model, topic.site, topic.building, now)
        elif isinstance(model, DeviceState):
            self._store_device_state(session, topic, model, now)
            out.signals += rules.on_device_state(model, now)
        elif isinstance(model, GalleryAck):
            key = gate_key(topic.site, topic.building, topic.gate_id or "")
            out.gallery_acks.append((key, model))
        elif isinstance(model, CommandResult):
            key = gate_key(topic.site, topic.building, topic.gate_id or "")
            out.command_results.append((key, model))
        elif not isinstance(model, DeviceTelemetry | BridgeHealth):
            raise ValueError(f"no handler for {type(model).__name__}")
        out.points += points_for(model, topic=topic, received_at=now)
        out.stored += 1
        return head

    @staticmethod
    def _check_source(topic: ParsedTopic, site: str, building: str, gate_id: str) -> None:
        """A gate may only report as itself: the payload must name the gate of its topic."""
        if (topic.site, topic.building, topic.gate_id) != (site, building, gate_id):
            raise ValueError(
                f"payload names gate {site}/{building}/{gate_id} but was published on the topic "
                f"of {topic.site}/{topic.building}/{topic.gate_id}"
            )

    def _store_access(self, session: Session, ev: AccessEvent, now: datetime, head: str) -> str:
        row = AccessRecord(
            event_id=ev.event_id,
            ts=ev.ts,
            received_at=now,
            site=ev.site,
            building=ev.building,
            gate_id=ev.gate_id,
            direction=ev.direction,
            decision=ev.decision,
            method=ev.method,
            person_id=ev.person_id,
            reason=ev.reason,
            flags=list(ev.flags),
            distance=ev.distance,
            margin=ev.margin,
            faces_in_view=ev.faces_in_view,
            seq=ev.seq,
        )
        head = seal(row, head)
        session.add(row)
        gate = self._gate(session, ev.site, ev.building, ev.gate_id)
        if ev.seq is not None and (gate.last_seq is None or ev.seq > gate.last_seq):
            gate.last_seq = ev.seq
        if ev.decision == "granted" and ev.person_id is not None:
            self._move_presence(session, ev)
            if AFTER_CURFEW_FLAG in ev.flags and ev.direction == "in":
                session.merge(LateReturn(event_id=ev.event_id, person_id=ev.person_id, ts=ev.ts))
        return head

    def _move_presence(self, session: Session, ev: AccessEvent) -> None:
        assert ev.person_id is not None
        row = session.get(PresenceRow, (ev.person_id, ev.building))
        current = None if row is None else _presence_from_row(row)
        moved = occupancy.next_presence(current, ev)
        if moved is None or moved == current:
            return
        if row is None:
            row = PresenceRow(person_id=ev.person_id, building=ev.building)
            session.add(row)
        row.inside = moved.inside
        row.since = moved.since
        row.gate_id = moved.gate_id
        row.irregular = moved.irregular

    def _availability(
        self, session: Session, topic: ParsedTopic, model: Availability, now: datetime
    ) -> list[Signal]:
        online = model.state == "online"
        if topic.kind == "gate" and topic.gate_id is not None:
            gate = self._gate(session, topic.site, topic.building, topic.gate_id)
            gate.online = online
            gate.availability_at = model.ts or now
            originator = gate_originator(topic.site, topic.building, topic.gate_id)
            return self._rules.on_availability(
                originator, topic.site, topic.building, model.state, now
            )
        if topic.kind == "device" and topic.room is not None and topic.device_id is not None:
            key = device_key(topic.site, topic.building, topic.room, topic.device_id)
            device = session.get(Device, key)
            if device is not None:
                device.online = online
                device.updated_at = now
            originator = device_originator(topic.site, topic.building, topic.room, topic.device_id)
            return self._rules.on_availability(
                originator, topic.site, topic.building, model.state, now
            )
        if topic.kind == "bridge" and topic.device_id is not None:
            originator = bridge_originator(topic.site, topic.device_id)
            return self._rules.on_availability(originator, topic.site, "", model.state, now)
        return []

    def _store_device_state(
        self, session: Session, topic: ParsedTopic, ev: DeviceState, now: datetime
    ) -> None:
        if (topic.site, topic.building, topic.room, topic.device_id) != (
            ev.site,
            ev.building,
            ev.room,
            ev.device_id,
        ):
            raise ValueError(
                f"payload names device {ev.site}/{ev.building}/{ev.room}/{ev.device_id} but was "
                "published on another device's topic"
            )
        key = device_key(ev.site, ev.building, ev.room, ev.device_id)
        session.add(
            DeviceStateRecord(
                event_id=ev.event_id,
                device_key=key,
                ts=ev.ts,
                status=ev.status,
                faults=list(ev.faults),
                online=ev.online,
                energy_kwh=ev.energy_kwh,
            )
        )
        device = session.get(Device, key)
        if device is None:
            device = Device(
                device_key=key,
                site=ev.site,
                building=ev.building,
                room=ev.room,
                device_id=ev.device_id,
            )
            session.add(device)
        elif device.updated_at is not None and device.updated_at > ev.ts:
            return  # an older state redelivered after a newer one: history only
        device.kind = ev.kind
        device.status = ev.status
        device.faults = list(ev.faults)
        device.online = ev.online
        device.since = ev.since
        device.updated_at = ev.ts
        device.state = ev.model_dump(mode="json", by_alias=True)

    def _gate(self, session: Session, site: str, building: str, gate_id: str) -> Gate:
        key = gate_key(site, building, gate_id)
        gate = session.get(Gate, key)
        if gate is None:
            gate = Gate(gate_key=key, site=site, building=building, gate_id=gate_id)
            session.add(gate)
        return gate

    @staticmethod
    def _dead_letter(session: Session, msg: Inbound, reason: str, now: datetime) -> None:
        session.add(
            DeadLetter(
                received_at=now,
                topic=msg.topic[:512],
                payload=msg.payload[:DEAD_LETTER_MAX_BYTES],
                payload_size=len(msg.payload),
                reason=reason[:4000],
            )
        )


_DEDUPED = (AccessEvent, DoorEvent, DeviceState, GalleryAck, CommandResult)


def _presence_from_row(row: PresenceRow) -> occupancy.Presence:
    return occupancy.Presence(
        person_id=row.person_id,
        building=row.building,
        inside=row.inside,
        since=row.since,
        gate_id=row.gate_id,
        irregular=row.irregular,
    )


def prune_seen(session: Session, older_than: datetime) -> int:
    """Forget event ids older than the dedup horizon; returns how many."""
    result: Any = session.execute(delete(SeenEvent).where(SeenEvent.received_at < older_than))
    return int(result.rowcount or 0)


def dedup_horizon(now: datetime, days: float) -> datetime:
    """The oldest received_at still remembered for dedup."""
    return now - timedelta(days=days)
