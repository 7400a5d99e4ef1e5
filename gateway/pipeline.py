"""From MQTT messages to stored state, alerts and time series: one batch, one transaction.

The ingest adapter (gateway.ingest) hands over batches of raw messages and acknowledges them to
the broker only after ``Pipeline.process`` returned, i.e. after the transaction committed. A crash
before that makes the broker redeliver; event ids already stored are dropped as duplicates.
Invalid payloads become dead letters with the reason; nothing in a payload can stop ingest.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from contracts.access import Flag
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
from contracts.registry import PayloadError, parse_message
from contracts.topics import ParsedTopic, parse_topic
from gateway.alerts.originators import bridge_originator, device_originator, gate_originator
from gateway.alerts.rules.engine import AlertRules
from gateway.alerts.types import Signal
from gateway.alerts.views import AlertView
from gateway.audit import chain_hash, chain_head, lock_chain
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
from gateway.services import Services
from gateway.timeseries.base import Point
from gateway.timeseries.mapping import device_series_key, points_for

log = logging.getLogger(__name__)

DEAD_LETTER_MAX_BYTES = 64 * 1024


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
    alerts_raised: int = 0
    notices: list[AlertNotice] = field(default_factory=list)
    views: list[AlertView] = field(default_factory=list)  # alerts changed: broadcast them


def merge_outcomes(a: BatchOutcome, b: BatchOutcome) -> BatchOutcome:
    """Two halves' outcomes as one (every field is a count or a list)."""
    return BatchOutcome(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(a)})


def process_resilient(pipeline: Pipeline, batch: Sequence[Inbound]) -> BatchOutcome:
    """Store a batch; isolate a message the database refuses instead of stalling on it.

    A batch refused for a reason that retrying cannot cure (a constraint, bad data) is split in
    halves until the one message at fault is found; it becomes a dead letter with the database's
    reason and the rest is stored. Transient failures (database locked or unreachable, disk
    full: OperationalError, InterfaceError) propagate, and the ingest retries the whole batch.
    """
    try:
        return pipeline.process(batch)
    except (OperationalError, InterfaceError):
        raise
    except (SQLAlchemyError, ValueError, TypeError) as exc:
        if len(batch) == 1:
            pipeline.dead_letter(batch[0], f"could not be stored: {exc}"[:2000])
            return BatchOutcome(dead_letters=1)
        log.warning("a batch of %d failed (%s); isolating the culprit", len(batch), exc)
        middle = len(batch) // 2
        return merge_outcomes(
            process_resilient(pipeline, batch[:middle]),
            process_resilient(pipeline, batch[middle:]),
        )


def gate_key(site: str, building: str, gate_id: str) -> str:
    """The gates table key of one gate."""
    return f"{site}/{building}/{gate_id}"


# The devices table is keyed by the appliance's series key, so the console asks the series store
# for a device's history with the row's own key.
device_key = device_series_key


def restore_sequences(rules: AlertRules, services: Services) -> None:
    """Seed gap detection with each gate's last stored sequence number."""
    with services.sessions() as session:
        for gate in session.scalars(select(Gate).where(Gate.last_seq.is_not(None))):
            assert gate.last_seq is not None
            originator = gate_originator(gate.site, gate.building, gate.gate_id)
            rules.restore_seq(originator, gate.last_seq)


class LocalPipeline:
    """The pipeline and its rules in this process: the interface of gateway.worker's worker.

    ``process`` stores a batch; ``tick`` lets the rules expire their windows. Both return what
    changed and leave broadcasting to the caller, after the commit.
    """

    def __init__(self, services: Services, rules: AlertRules) -> None:
        self._services = services
        self._rules = rules
        series_for_events = services.config.timeseries.influx is not None
        self._pipeline = Pipeline(services, rules, series_for_events=series_for_events)

    def start(self) -> None:
        """Seed the rules from the database."""
        restore_sequences(self._rules, self._services)

    def process(self, batch: Sequence[Inbound]) -> BatchOutcome:
        """Store one batch (isolating a message the database refuses)."""
        return process_resilient(self._pipeline, batch)

    def tick(self, now: datetime) -> list[AlertView]:
        """Apply the alerts the rules' time-driven checks raise or clear; the changed ones."""
        signals = self._rules.tick(now)
        if not signals:
            return []
        with self._services.sessions.begin() as session:
            return self._services.alerts.apply_in(session, signals)

    def stop(self) -> None:
        """Nothing to release: the engine belongs to the gateway."""


class Pipeline:
    """Validates, deduplicates and stores batches; runs the alert rules over them."""

    def __init__(
        self, services: Services, rules: AlertRules, *, series_for_events: bool = True
    ) -> None:
        self._services = services
        self._rules = rules
        # Access and door events are in the SQL access log already; only a long-term sink
        # (InfluxDB) wants them as points too.
        self._series_for_events = series_for_events

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
                check_source(parsed, model)  # before dedup: a forged id is still a forgery
            except (PayloadError, ValueError) as exc:
                dead.append((msg, str(exc)))
                continue
            valid.append((msg, parsed, model))

        alerts = self._services.alerts
        with self._services.sessions.begin() as session, session.no_autoflush:
            lock_chain(session)  # first: replicas sharing the database take turns
            work = _Work(session, now)
            fresh = self._drop_duplicates(work, valid, out)
            work.preload([m for _, _, m in fresh])
            for msg, parsed, model in fresh:
                try:
                    self._handle(work, msg, parsed, model, out)
                except ValueError as exc:  # a payload that is valid JSON but makes no sense
                    dead.append((msg, f"{msg.topic}: {exc}"))
            for msg, reason in dead:
                self._dead_letter(session, msg, reason, now)
            out.dead_letters = len(dead)
            work.write()
            out.views = alerts.apply_in(session, out.signals) if out.signals else []
            out.alerts_raised = sum(1 for v in out.views if v.count == 1 and v.state == "active")
        for msg, reason in dead:
            log.warning("dead letter on %s: %s", msg.topic, reason)
        return out

    def dead_letter(self, msg: Inbound, reason: str) -> None:
        """Keep one message that could not be stored as a dead letter, with the reason."""
        with self._services.sessions.begin() as session:
            self._dead_letter(session, msg, reason, self._services.clock())
        log.error("dead letter on %s: %s", msg.topic, reason)

    # --- dedup ------------------------------------------------------------------------------

    def _drop_duplicates(
        self,
        work: _Work,
        valid: list[tuple[Inbound, ParsedTopic, WireModel]],
        out: BatchOutcome,
    ) -> list[tuple[Inbound, ParsedTopic, WireModel]]:
        ids = [m.event_id for _, _, m in valid if isinstance(m, _DEDUPED)]
        seen: set[str] = set()
        for start in range(0, len(ids), 500):
            seen.update(
                work.session.scalars(
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
                work.seen.append({"event_id": event_id, "received_at": work.now})
            fresh.append(item)
        return fresh

    # --- per message --------------------------------------------------------------------------

    def _handle(
        self,
        work: _Work,
        msg: Inbound,
        topic: ParsedTopic,
        model: WireModel,
        out: BatchOutcome,
    ) -> None:
        rules, session, now = self._rules, work.session, work.now
        if isinstance(model, AccessEvent):
            work.add_access(model)
            out.signals += rules.on_access(model, now)
            out.signals += self._sequence(
                work, model.site, model.building, model.gate_id, model.seq
            )
        elif isinstance(model, DoorEvent):
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
            out.signals += self._sequence(
                work, model.site, model.building, model.gate_id, model.seq
            )
        elif isinstance(model, SecurityEvent):
            out.signals += rules.on_security(model, now)
            out.signals += self._sequence(
                work, model.site, model.building, model.gate_id, model.seq
            )
        elif isinstance(model, Availability):
            out.signals += self._availability(work, topic, model)
        elif isinstance(model, Heartbeat):
            gate = work.gate(topic.site, topic.building, topic.gate_id or "")
            gate.last_heartbeat_at = model.ts
            gate.heartbeat = model.model_dump(mode="json", by_alias=True)
            gate.gallery_version = model.gallery_version
            out.signals += rules.on_heartbeat(model, topic.site, topic.building, now)
        elif isinstance(model, DeviceState):
            self._store_device_state(work, model)
            out.signals += rules.on_device_state(model, now)
        elif isinstance(model, GalleryAck | CommandResult):
            key = gate_key(topic.site, topic.building, topic.gate_id or "")
            if isinstance(model, GalleryAck):
                out.gallery_acks.append((key, model))
            else:
                out.command_results.append((key, model))
            out.signals += self._sequence(
                work, topic.site, topic.building, topic.gate_id or "", model.seq
            )
        elif isinstance(model, AlertNotice):
            out.notices.append(model)
            return  # replica-to-replica chatter: not an event to count or store
        elif not isinstance(model, DeviceTelemetry | BridgeHealth):
            raise ValueError(f"no handler for {type(model).__name__}")
        if self._series_for_events or not isinstance(model, AccessEvent | DoorEvent):
            out.points += points_for(model, topic=topic, received_at=now)
        out.stored += 1

    def _sequence(
        self, work: _Work, site: str, building: str, gate_id: str, seq: int | None
    ) -> list[Signal]:
        """Track a gate's outbox sequence (every message from its outbox carries it); report gaps.

        With a shared subscription each replica sees only part of a gate's stream, so gap
        detection is off there (it would report the other replicas' events as missing).
        """
        if seq is None:
            return []
        gate = work.gate(site, building, gate_id)
        if gate.last_seq is None or seq > gate.last_seq:
            gate.last_seq = seq
        if self._services.config.mqtt.shared_group is not None:
            return []
        return self._rules.on_seq(gate_originator(site, building, gate_id), seq, work.now)

    def _availability(self, work: _Work, topic: ParsedTopic, model: Availability) -> list[Signal]:
        now = work.now
        online = model.state == "online"
        if topic.kind == "gate" and topic.gate_id is not None:
            gate = work.gate(topic.site, topic.building, topic.gate_id)
            gate.online = online
            gate.availability_at = model.ts or now
            originator = gate_originator(topic.site, topic.building, topic.gate_id)
            return self._rules.on_availability(
                originator, topic.site, topic.building, model.state, now
            )
        if topic.kind == "device" and topic.room is not None and topic.device_id is not None:
            key = device_key(topic.site, topic.building, topic.room, topic.device_id)
            device = work.device(key)
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

    @staticmethod
    def _store_device_state(work: _Work, ev: DeviceState) -> None:
        session = work.session
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
        device = work.device(key)
        if device is None:
            device = Device(
                device_key=key,
                site=ev.site,
                building=ev.building,
                room=ev.room,
                device_id=ev.device_id,
            )
            session.add(device)
            work.devices[key] = device
        elif device.updated_at is not None and device.updated_at > ev.ts:
            return  # an older state redelivered after a newer one: history only
        device.kind = ev.kind
        device.status = ev.status
        device.faults = list(ev.faults)
        device.online = ev.online
        device.since = ev.since
        device.updated_at = ev.ts
        device.state = ev.model_dump(mode="json", by_alias=True)

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


_DEDUPED = (AccessEvent, DoorEvent, DeviceState, GalleryAck, CommandResult, SecurityEvent)


class _Work:
    """One batch's working state: rows collected in memory, written in bulk at the end.

    The ORM costs ~0.1 ms per object; at thousands of events per second the access log, the
    seen ids, presence and late returns go through executemany inserts/upserts instead.
    """

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.seen: list[dict[str, Any]] = []
        self.access: list[dict[str, Any]] = []
        self.late: list[dict[str, Any]] = []
        self.presence: dict[tuple[str, str], occupancy.Presence] = {}
        self.moved: set[tuple[str, str]] = set()
        self.gates: dict[str, Gate] = {}
        # Rows added in this batch: with autoflush off, session.get would not see them.
        self.devices: dict[str, Device] = {}
        self._head: str | None = None

    def preload(self, models: Sequence[WireModel]) -> None:
        """Fetch, in one query each, the gates and presence rows this batch will touch."""
        self.gates = {g.gate_key: g for g in self.session.scalars(select(Gate))}
        people = {
            m.person_id
            for m in models
            if isinstance(m, AccessEvent) and m.decision == "granted" and m.person_id
        }
        ordered = sorted(people)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            columns = select(
                PresenceRow.person_id,
                PresenceRow.building,
                PresenceRow.inside,
                PresenceRow.since,
                PresenceRow.gate_id,
                PresenceRow.irregular,
            )  # plain rows: no ORM state per person
            for row in self.session.execute(columns.where(PresenceRow.person_id.in_(chunk))):
                self.presence[(row.person_id, row.building)] = occupancy.Presence.of(row)

    def device(self, key: str) -> Device | None:
        """The appliance's row, including one added earlier in this batch."""
        device = self.devices.get(key)
        if device is None:
            device = self.session.get(Device, key)
            if device is not None:
                self.devices[key] = device
        return device

    def gate(self, site: str, building: str, gate_id: str) -> Gate:
        """The gate's row, created when first heard of."""
        key = gate_key(site, building, gate_id)
        gate = self.gates.get(key)
        if gate is None:
            gate = Gate(gate_key=key, site=site, building=building, gate_id=gate_id)
            self.session.add(gate)
            self.gates[key] = gate
        return gate

    def add_access(self, ev: AccessEvent) -> None:
        """Chain the event onto the access log and move the person's presence."""
        if self._head is None:
            self._head = chain_head(self.session)
        row = access_fields(ev)
        digest = chain_hash(self._head, row)
        row["received_at"] = self.now
        row["prev_hash"] = self._head
        row["hash"] = digest
        self.access.append(row)
        self._head = digest
        if ev.decision != "granted" or ev.person_id is None:
            return
        key = (ev.person_id, ev.building)
        moved = occupancy.next_presence(self.presence.get(key), ev)
        if moved is not None:
            self.presence[key] = moved
            self.moved.add(key)
        if Flag.AFTER_CURFEW in ev.flags and ev.direction == "in":
            self.late.append({"event_id": ev.event_id, "person_id": ev.person_id, "ts": ev.ts})

    def write(self) -> None:
        """Flush the collected rows: executemany inserts and upserts."""
        session = self.session
        if self.seen:
            _bulk_insert(session, _table(SeenEvent), self.seen)
        if self.access:
            _bulk_insert(session, _table(AccessRecord), self.access)
        if self.late:
            _upsert(session, LateReturn, self.late, ["event_id"], [])
        rows = [asdict(self.presence[key]) for key in self.moved]
        if rows:
            _upsert(
                session,
                PresenceRow,
                rows,
                ["person_id", "building"],
                ["inside", "since", "gate_id", "irregular"],
            )
        session.flush()


def _bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """executemany INSERT of plain rows, in the session's transaction.

    On SQLite the rows go straight to the driver, encoded as SQLAlchemy stores them (UTC
    datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff', JSON as json.dumps): SQLAlchemy's per-value
    parameter processing cost more than the insert itself at thousands of events per second.
    Elsewhere (PostgreSQL) a Core insert.
    """
    if session.get_bind().dialect.name != "sqlite":
        session.execute(insert(table), rows)
        return
    columns = list(rows[0])
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"not columns of {table.name}: {sorted(unknown)}")
    # Names from our own schema (checked above); every value is a bound parameter.
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    driver = session.connection().connection.driver_connection
    assert driver is not None
    driver.executemany(sql, [tuple(map(_sqlite_value, row.values())) for row in rows])


def _sqlite_value(value: Any) -> Any:
    kind = type(value)
    if kind is datetime:
        return _sqlite_datetime(value)
    if kind is list:
        return json.dumps(value)
    return value


@functools.lru_cache(maxsize=64)  # received_at is one instant per batch
def _sqlite_datetime(value: datetime) -> str:
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}"
    )


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


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


def access_fields(ev: AccessEvent) -> dict[str, Any]:
    """The access-log columns of an event that its chain hash covers."""
    return {
        "event_id": ev.event_id,
        "ts": ev.ts,
        "site": ev.site,
        "building": ev.building,
        "gate_id": ev.gate_id,
        "direction": ev.direction,
        "decision": ev.decision,
        "method": ev.method,
        "person_id": ev.person_id,
        "reason": ev.reason,
        "flags": list(ev.flags),
        "distance": ev.distance,
        "margin": ev.margin,
        "faces_in_view": ev.faces_in_view,
        "seq": ev.seq,
    }


def _upsert(
    session: Session,
    model: type[Any],
    rows: list[dict[str, Any]],
    keys: list[str],
    update: list[str],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE/NOTHING on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(model)
        pg_stmt = (
            pg.on_conflict_do_update(
                index_elements=keys, set_={c: getattr(pg.excluded, c) for c in update}
            )
            if update
            else pg.on_conflict_do_nothing(index_elements=keys)
        )
        session.execute(pg_stmt, rows)
        return
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    lite = sqlite_insert(model)
    stmt = (
        lite.on_conflict_do_update(
            index_elements=keys, set_={c: getattr(lite.excluded, c) for c in update}
        )
        if update
        else lite.on_conflict_do_nothing(index_elements=keys)
    )
    session.execute(stmt, rows)


def prune_seen(session: Session, older_than: datetime) -> int:
    """Forget event ids older than the dedup horizon; returns how many."""
    result: Any = session.execute(delete(SeenEvent).where(SeenEvent.received_at < older_than))
    return int(result.rowcount or 0)


def dedup_horizon(now: datetime, days: float) -> datetime:
    """The oldest received_at still remembered for dedup."""
    return now - timedelta(days=days)
