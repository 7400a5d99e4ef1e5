"""A semester of data: fill a real database through the gateway's own ingest, then time what
people do with it.

1. Fill: ``--students`` students (buildings of ``--beds`` beds, 6 gates each: 60 gates for
   20,000 students) pass their gates 4 times a day for ``--days`` days (out in the morning,
   back for lunch, out again, back in the evening; some late returns after curfew, some
   denied attempts before a pass), doors are held or forced open now and then, and
   ``--appliances`` appliances (the device simulator's rooms and physics) report their states
   all semester and telemetry for the time-series retention period. Every message goes through
   ``Gateway.process`` (validate, dedup, hash-chained access log, presence, late returns,
   alert rules, device states, time-series points), one transaction per batch of 2,000, with
   the clock moved along the simulated time; the welfare check runs each night after curfew
   and the hourly upkeep once a simulated day, as the maintenance loop would.
2. Measure, ``--repeats`` times each, through the API routes (FastAPI TestClient, logged-in
   roles) or the gateway's own functions: the guard console's open alerts, access-log search by
   person, by gate and by time range, a building's roll call, the facilities board, a device's
   7-day chart, welfare evaluation for all students, ``dormguard audit verify`` (time and peak
   Python memory) and the retention job. The slowest SQL statement of each query is shown with
   its plan (EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL).
3. Ingest of a fresh day into the full database and into an empty one (same people), in the
   same run: ``ingest_ratio_full_vs_empty``.

SQLite (a file, through the migrations) always; PostgreSQL (tests/postgres.py's throwaway
server) when Debian's server binaries are installed. Prints, last, one JSON line: per database
events, worst_console_p95_ms, roll_call_ms, ingest_ratio_full_vs_empty and the other figures.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
from sqlalchemy import Engine, create_engine, event, func, select, text

from contracts.access import Flag, Reason
from contracts.models import SCHEMA_VERSION, DeviceState, new_event_id
from contracts.registry import parse_message
from contracts.topics import (
    DeviceAddress,
    DeviceChannel,
    GateAddress,
    GateChannel,
    device_topic,
    gate_topic,
)
from edge.devices.config import TYPE_DEFAULTS
from edge.devices.machines import initial_state, next_state, publishable_change
from edge.devices.model import ApplianceType, MachineParams, Reading
from edge.devices.simulation.fleet import SimDevice, plan_rooms
from edge.devices.simulation.physics import generate
from edge.devices.simulation.trace import ApplianceTrace
from gateway.app import Gateway, build_gateway, seed_gates
from gateway.audit import verify_chain
from gateway.auth.roles import Role
from gateway.config import GatewayConfig
from gateway.db import migrate
from gateway.db.bulk import bulk_insert, table_of
from gateway.db.schema import AccessRecord, AlertRow, DeviceStateRecord, LateReturn, Person
from gateway.ingest.batch import Inbound
from gateway.ingest.store import device_key
from gateway.timeseries.mapping import points_for
from tests.gatewayproc import gateway_config

SITE = "campus"
BATCH = 2000  # the ingest's batch_max
GATES_PER_BUILDING = 6  # g1-g3 entrances, g4-g6 exits: 60 gates for 10 buildings
TEMPLATES_PER_KIND = 8  # simulated appliance-days per kind, reused with offsets
RATIO_EVENTS = 20_000  # access events of the fresh batch (at most one day of passes)
CONSOLE = ("open_alerts", "access_by_person", "access_by_gate", "access_by_time", "board", "chart")


@dataclass(frozen=True)
class Scale:
    days: int = 120
    students: int = 20_000
    appliances: int = 2_000
    beds: int = 2_000
    telemetry_minutes: int = 15
    retention_days: int = 30  # the time-series store's default: older telemetry is pruned
    live_days: int = 7  # appliance messages through the ingest (before: written in bulk)
    repeats: int = 20
    seed: int = 11

    @property
    def buildings(self) -> list[str]:
        return [f"b{n + 1}" for n in range(math.ceil(self.students / self.beds))]


class SimClock:
    """The gateway's clock, moved along the simulated semester."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Counts:
    """What the semester generated, by kind."""

    access: int = 0
    denied: int = 0
    late: int = 0
    doors: int = 0
    states: int = 0
    telemetry: int = 0

    @property
    def messages(self) -> int:
        return self.access + self.doors + self.states + self.telemetry


Message = tuple[datetime, str, bytes]


def _iso(ts: datetime) -> str:
    return ts.isoformat()


@dataclass(frozen=True, slots=True)
class StateChange:
    """A state the bridge's state machine publishes, at an offset into a simulated day."""

    at_s: float
    status: str
    faults: tuple[str, ...]
    sessions: int


def state_changes(kind: ApplianceType, samples: Sequence[ApplianceTrace]) -> list[StateChange]:
    """What the device bridge would publish for a simulated day: the machine (edge/devices/
    machines.py, the type's default thresholds) run over the readings, the day run twice so
    the second pass starts from a settled state; the changes of the second pass."""
    params = MachineParams(**TYPE_DEFAULTS.get(kind, {}))  # type: ignore[arg-type]
    state = initial_state("sim", kind)
    day0 = datetime(2026, 1, 1, tzinfo=UTC)
    changes: list[StateChange] = []
    for offset in (0.0, 86400.0):
        for sample in samples:
            reading = Reading(
                device_id="sim",
                at=day0 + timedelta(seconds=offset + sample.at_s),
                power_w=sample.power_w,
                energy_kwh=sample.energy_kwh + offset,  # a meter only counts up
                voltage_v=sample.voltage_v,
                current_a=sample.current_a,
                temperature_c=sample.temperature_c,
                water_l=sample.water_l,
                door_open=sample.door_open,
            )
            new = next_state(state, reading, params)
            if offset and publishable_change(state, new):
                faults = tuple(sorted(f.value for f in new.faults))
                changes.append(StateChange(sample.at_s, new.status.value, faults, new.sessions))
            state = new
    return changes


_FAULT_OF = {
    ApplianceType.WASHER: "leak",
    ApplianceType.DRYER: "over_temperature",
    ApplianceType.WATER_DISPENSER: "heater_fault",
    ApplianceType.HAIR_DRYER: "overrun",
}


class Semester:
    """The simulated semester, one day of messages at a time (deterministic for a seed)."""

    def __init__(self, scale: Scale, zone: ZoneInfo, curfew_hour: int, first_day: date) -> None:
        self.scale = scale
        self.zone = zone
        self.curfew_hour = curfew_hour
        self.first_day = first_day
        self.rng = random.Random(scale.seed)
        self.counts = Counts()
        self.seq: dict[tuple[str, str], int] = {}
        buildings = scale.buildings
        self.students = [
            (f"s{n:05d}", buildings[n // scale.beds], self.rng.random() < 0.05)  # night owl
            for n in range(scale.students)
        ]
        self.devices = self._plan_devices(buildings)
        self.templates = {
            kind: [
                generate(kind, random.Random(scale.seed * 100 + i), duration_s=86400, step_s=60)
                for i in range(TEMPLATES_PER_KIND)
            ]
            for kind in ApplianceType
        }
        self.changes = {
            kind: [state_changes(kind, samples) for samples in days]
            for kind, days in self.templates.items()
        }
        self.meters = {d.device_id: self.rng.uniform(50, 900) for d in self.devices}

    def _plan_devices(self, buildings: list[str]) -> list[SimDevice]:
        rooms = math.ceil(self.scale.appliances / 5)
        per_building = math.ceil(rooms / len(buildings))
        devices: list[SimDevice] = []
        for b in buildings:
            left = min(per_building, rooms - len(devices) // 5)
            if left > 0:
                devices += plan_rooms(left, building=b)
        return devices[: self.scale.appliances]

    def day_start(self, day: int) -> datetime:
        """Local midnight of the semester's ``day`` (0-based), in UTC."""
        local = datetime.combine(self.first_day + timedelta(days=day), datetime.min.time())
        return local.replace(tzinfo=self.zone).astimezone(UTC)

    def people_rows(self, now: datetime) -> list[dict[str, Any]]:
        """The people table: every student, one in 100 with a counsellor."""
        return [
            {
                "person_id": pid,
                "name": f"Student {pid[1:]}",
                "kind": "student",
                "status": "active",
                "buildings": [b],
                "gates": [],
                "windows": [],
                "valid_from": None,
                "valid_until": None,
                "cards": [],
                "pin_hash": None,
                "counsellor": "counsellor-user" if n % 100 == 0 else None,
                "face_opt_out": False,
                "created_at": now,
                "updated_at": now,
            }
            for n, (pid, b, _owl) in enumerate(self.students)
        ]

    def _next_seq(self, building: str, gate: str) -> int:
        key = (building, gate)
        self.seq[key] = self.seq.get(key, 0) + 1
        return self.seq[key]

    def _access(
        self,
        ts: datetime,
        building: str,
        gate: str,
        direction: str,
        person: str | None,
        *,
        decision: str = "granted",
        reason: str = Reason.GRANTED,
        method: str = "face",
        flags: Sequence[str] = (),
    ) -> Message:
        face = method == "face"
        payload = {
            "schema": SCHEMA_VERSION,
            "event_id": new_event_id(),
            "ts": _iso(ts),
            "producer": f"gate-{building}-{gate}",
            "site": SITE,
            "building": building,
            "gate_id": gate,
            "direction": direction,
            "decision": decision,
            "method": method,
            "person_id": person,
            "reason": reason,
            "flags": list(flags),
            "distance": round(self.rng.uniform(0.28, 0.45), 3) if face and person else None,
            "margin": round(self.rng.uniform(0.2, 0.5), 3) if face and person else None,
            "faces_in_view": 1 if face else 0,
            "seq": self._next_seq(building, gate),
        }
        self.counts.access += 1
        if decision == "denied":
            self.counts.denied += 1
        topic = gate_topic(GateAddress(SITE, building, gate), GateChannel.EVENT)
        return ts, topic, orjson.dumps(payload)

    def passes(self, day: int) -> list[Message]:
        """One day of gate traffic: 4 passes per student, denials, late returns, doors."""
        rng, start = self.rng, self.day_start(day)
        curfew = start + timedelta(hours=self.curfew_hour)
        out: list[Message] = []
        for pid, b, owl in self.students:
            entrance = f"g{rng.randint(1, 3)}"
            exit_gate = f"g{rng.randint(4, 6)}"
            method = "card" if rng.random() < 0.1 else "face"
            late = rng.random() < (0.3 if owl else 0.02)
            evening = (
                curfew + timedelta(minutes=rng.uniform(1, 150))
                if late
                else start + timedelta(hours=rng.uniform(17.0, 22.9))
            )
            moments = (
                ("out", start + timedelta(hours=rng.gauss(8.3, 0.6))),
                ("in", start + timedelta(hours=rng.uniform(11.5, 13.0))),
                ("out", start + timedelta(hours=rng.uniform(13.5, 15.5))),
                ("in", evening),
            )
            for direction, ts in moments:
                gate = entrance if direction == "in" else exit_gate
                if rng.random() < 0.02:  # not recognised at first: a denial, then the pass
                    out.append(
                        self._access(
                            ts - timedelta(seconds=rng.uniform(3, 20)),
                            b,
                            gate,
                            direction,
                            None,
                            decision="denied",
                            reason=Reason.UNKNOWN_FACE,
                        )
                    )
                flags = [Flag.AFTER_CURFEW.value] if direction == "in" and ts >= curfew else []
                if flags:
                    self.counts.late += 1
                out.append(self._access(ts, b, gate, direction, pid, method=method, flags=flags))
        for b in self.scale.buildings:
            for g in range(1, GATES_PER_BUILDING + 1):
                out.append(self._door(start + timedelta(hours=rng.uniform(7, 22)), b, f"g{g}"))
                if rng.random() < 0.05:
                    at = start + timedelta(hours=rng.uniform(0, 24))
                    out.append(self._door(at, b, f"g{g}", kind="forced_open"))
        return out

    def _door(self, ts: datetime, building: str, gate: str, kind: str = "held_open") -> Message:
        payload = {
            "schema": SCHEMA_VERSION,
            "event_id": new_event_id(),
            "ts": _iso(ts),
            "producer": f"gate-{building}-{gate}",
            "site": SITE,
            "building": building,
            "gate_id": gate,
            "kind": kind,
            "open_for_s": round(self.rng.uniform(35, 120), 1) if kind == "held_open" else None,
            "seq": self._next_seq(building, gate),
        }
        self.counts.doors += 1
        topic = gate_topic(GateAddress(SITE, building, gate), GateChannel.DOOR)
        return ts, topic, orjson.dumps(payload)

    def appliances(self, day: int) -> list[Message]:
        """One day of appliance states (each change) and, within retention, telemetry."""
        rng, start = self.rng, self.day_start(day)
        with_telemetry = day >= self.scale.days - self.scale.retention_days
        every = self.scale.telemetry_minutes
        out: list[Message] = []
        for dev in self.devices:
            template = rng.randrange(TEMPLATES_PER_KIND)
            samples = self.templates[dev.kind][template]
            base = self.meters[dev.device_id] - samples[0].energy_kwh
            addr = DeviceAddress(SITE, dev.building, dev.room, dev.device_id)
            state_topic = device_topic(addr, DeviceChannel.STATE)
            changes = list(self.changes[dev.kind][template])
            if rng.random() < 0.003:  # a fault for two hours: raised, then cleared
                at = rng.uniform(0, 86400 - 7200)
                before = [c for c in changes if c.at_s <= at]
                last = before[-1] if before else StateChange(0, "idle", (), 0)
                fault = (_FAULT_OF[dev.kind],)
                changes += [replace(last, at_s=at, faults=fault), replace(last, at_s=at + 7200)]
                changes.sort(key=lambda c: c.at_s)
            for change in changes:
                sample = samples[min(len(samples) - 1, int(change.at_s // 60))]
                ts = start + timedelta(seconds=change.at_s)
                out.append((ts, state_topic, self._state(dev, ts, change, sample, base)))
            if with_telemetry:
                telemetry_topic = device_topic(addr, DeviceChannel.TELEMETRY)
                for sample in samples[every - 1 :: every]:
                    ts = start + timedelta(seconds=sample.at_s)
                    out.append((ts, telemetry_topic, self._reading(dev, ts, sample, base)))
            self.meters[dev.device_id] = base + samples[-1].energy_kwh
        return out

    def _state(
        self, dev: SimDevice, ts: datetime, change: StateChange, sample: ApplianceTrace, base: float
    ) -> bytes:
        self.counts.states += 1
        return orjson.dumps(
            {
                "schema": SCHEMA_VERSION,
                "event_id": new_event_id(),
                "ts": _iso(ts),
                "producer": f"bridge-{dev.building}",
                "site": SITE,
                "building": dev.building,
                "room": dev.room,
                "device_id": dev.device_id,
                "kind": dev.kind.value,
                "status": change.status,
                "since": _iso(ts),
                "faults": list(change.faults),
                "online": True,
                "power_w": round(sample.power_w, 1),
                "energy_kwh": round(base + sample.energy_kwh, 3),
                "temperature_c": sample.temperature_c,
                "sessions": change.sessions,
            }
        )

    def _reading(self, dev: SimDevice, ts: datetime, sample: ApplianceTrace, base: float) -> bytes:
        self.counts.telemetry += 1
        reading: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "event_id": new_event_id(),
            "ts": _iso(ts),
            "producer": f"bridge-{dev.building}",
            "site": SITE,
            "building": dev.building,
            "room": dev.room,
            "device_id": dev.device_id,
            "kind": dev.kind.value,
            "power_w": round(sample.power_w, 1),
            "energy_kwh": round(base + sample.energy_kwh, 3),
            "voltage_v": round(sample.voltage_v, 1),
            "current_a": round(sample.current_a, 3),
        }
        if sample.temperature_c is not None:
            reading["temperature_c"] = round(sample.temperature_c, 1)
        return orjson.dumps(reading)


# --- the gateway over one database ------------------------------------------------------------


def make_gateway(workdir: Path, url: str, scale: Scale, clock: SimClock) -> Gateway:
    """A gateway (not connected to any broker) over ``url``, migrated, its gates seeded."""
    config = GatewayConfig.model_validate(
        gateway_config(
            workdir,
            1,
            ingest_worker=False,
            database={"url": url},
            buildings=[{"id": b} for b in scale.buildings],
            gates=[
                {"building": b, "id": f"g{g}", "direction": "in" if g <= 3 else "out"}
                for b in scale.buildings
                for g in range(1, GATES_PER_BUILDING + 1)
            ],
        )
    )
    gw = build_gateway(config, clock=clock)
    migrate(gw.services.engine)
    seed_gates(gw.services)
    gw.store.start()
    gw.services.series_writer.start()
    return gw


def close_gateway(gw: Gateway) -> None:
    """Flush the series store and release the database."""
    gw.services.series_writer.flush(60.0)
    gw.services.series_writer.close()
    gw.services.engine.dispose()


def add_people(gw: Gateway, semester: Semester) -> None:
    """The students, in one transaction."""
    rows = semester.people_rows(gw.services.clock())
    with gw.services.sessions.begin() as session:
        for start in range(0, len(rows), 5000):
            bulk_insert(session, table_of(Person), rows[start : start + 5000])


def feed(gw: Gateway, clock: SimClock, messages: Sequence[Message]) -> int:
    """Messages (in time order) through the gateway in batches; the number stored."""
    stored = 0
    for start in range(0, len(messages), BATCH):
        chunk = messages[start : start + BATCH]
        clock.now = chunk[-1][0] + timedelta(seconds=1)
        out = gw.process([Inbound(topic, payload) for _, topic, payload in chunk])
        if out.dead_letters or out.duplicates:
            raise RuntimeError(f"{out.dead_letters} dead letters, {out.duplicates} duplicates")
        stored += out.stored
        gw.services.alerts.broadcast(gw.store.tick(clock.now))
    return stored


def backfill_appliances(gw: Gateway, messages: Sequence[Message]) -> int:
    """Appliance messages of the days before the live window, written in bulk: the state history
    rows the ingest would write (gateway.db.bulk, one transaction) and the telemetry's points
    (the same mapping, into the series store); the number written."""
    history: list[dict[str, Any]] = []
    points = []
    for _ts, topic, payload in messages:
        model = parse_message(topic, payload)
        if isinstance(model, DeviceState):
            key = device_key(model.site, model.building, model.room, model.device_id)
            history.append(
                {
                    "event_id": model.event_id,
                    "device_key": key,
                    "ts": model.ts,
                    "status": model.status,
                    "faults": list(model.faults),
                    "online": model.online,
                    "energy_kwh": model.energy_kwh,
                }
            )
        else:
            points += points_for(model)
    with gw.services.sessions.begin() as session:
        for start in range(0, len(history), 20_000):
            bulk_insert(session, table_of(DeviceStateRecord), history[start : start + 20_000])
    if points:
        gw.services.series_writer.write(points)
    return len(messages)


@dataclass
class Fill:
    seconds: float
    stored: int
    counts: Counts


def fill(gw: Gateway, clock: SimClock, semester: Semester, log: Callable[[str], None]) -> Fill:
    """The whole semester, day by day: gate traffic through the ingest, and appliances too in
    the last ``live_days`` (before that, in bulk); welfare after curfew, the upkeep daily."""
    started = time.monotonic()
    stored = 0
    scale = semester.scale
    grace = timedelta(minutes=gw.services.config.welfare.grace_minutes + 1)
    for day in range(scale.days):
        appliances = semester.appliances(day)
        if day < scale.days - scale.live_days:
            stored += backfill_appliances(gw, appliances)
            appliances = []
        messages = sorted(semester.passes(day) + appliances, key=lambda m: m[0])
        welfare_at = semester.day_start(day) + timedelta(hours=semester.curfew_hour) + grace
        before = [m for m in messages if m[0] < welfare_at]
        stored += feed(gw, clock, before)
        clock.now = welfare_at
        gw.services.alerts.apply(gw.welfare_signals(welfare_at))
        stored += feed(gw, clock, messages[len(before) :])
        clock.now = semester.day_start(day + 1)
        gw._hourly(clock.now)  # the upkeep's retention (it runs hourly in the gateway)
        if day % 10 == 9 or day == scale.days - 1:
            elapsed = time.monotonic() - started
            log(
                f"  day {day + 1}/{scale.days}: {semester.counts.access:,} access events, "
                f"{stored:,} messages stored, {semester.counts.access / elapsed:,.0f} access "
                f"events/s, {stored / elapsed:,.0f} messages/s"
            )
    gw.services.series_writer.flush(600.0)
    return Fill(time.monotonic() - started, stored, replace(semester.counts))


# --- measuring -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Statement:
    seconds: float
    sql: str
    params: Any


@dataclass
class SqlRecorder:
    """The SQL statements an engine runs while recording, with their durations."""

    engine: Engine
    statements: list[Statement] = field(default_factory=list)
    _on: bool = False

    def install(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)

    def uninstall(self) -> None:
        """Stop listening (the listeners cost a little on every statement)."""
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def _before(
        self, conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: Any
    ) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: Any) -> None:
        if self._on and sql.lstrip().upper().startswith(("SELECT", "DELETE")):
            seconds = time.perf_counter() - conn.info.get("bench_started", time.perf_counter())
            self.statements.append(Statement(seconds, sql, params))

    @contextmanager
    def recording(self) -> Iterator[list[Statement]]:
        self.statements = []
        self._on = True
        try:
            yield self.statements
        finally:
            self._on = False


def explain(engine: Engine, stmt: Statement) -> list[str]:
    """The plan of one recorded statement in the backend's own words."""
    postgres = engine.dialect.name == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:  # rolled back: EXPLAIN ANALYZE of a DELETE runs it
        rows = conn.exec_driver_sql(prefix + stmt.sql, stmt.params).all()
    lines = [str(r[0]) for r in rows] if postgres else [str(r[-1]) for r in rows]
    return [line if len(line) <= 160 else line[:157] + "..." for line in lines]


@dataclass
class Timing:
    name: str
    ms: list[float]
    slowest_sql: Statement | None = None
    plan: list[str] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.ms, 0.5)

    @property
    def p95(self) -> float:
        return percentile(self.ms, 0.95)


def measure(
    name: str, call: Callable[[int], object], repeats: int, recorder: SqlRecorder
) -> Timing:
    """Time ``call(i)`` ``repeats`` times (after one warm-up); the slowest statement's plan."""
    with recorder.recording() as statements:
        call(0)
    slowest = max(statements, key=lambda s: s.seconds) if statements else None
    ms = []
    for i in range(repeats):
        t = time.perf_counter()
        call(i + 1)
        ms.append((time.perf_counter() - t) * 1000)
    timing = Timing(name, ms, slowest)
    if slowest is not None:
        timing.plan = explain(recorder.engine, slowest)
    return timing


def run_queries(
    gw: Gateway, clock: SimClock, semester: Semester, repeats: int
) -> tuple[list[Timing], dict[str, Any]]:
    """The console's queries and the jobs, timed; and the job figures (verify, retention)."""
    from fastapi.testclient import TestClient

    from gateway.api import create_app
    from tests.gatewaykit import login

    services = gw.services
    recorder = SqlRecorder(services.engine)
    recorder.install()
    rng = random.Random(semester.scale.seed + 1)
    end = clock.now
    mid = semester.day_start(semester.scale.days // 2) + timedelta(hours=18)
    people = [pid for pid, _b, _o in semester.students]
    device_keys = [device_key(SITE, d.building, d.room, d.device_id) for d in semester.devices]
    building = semester.scale.buildings[0]
    timings: list[Timing] = []
    with TestClient(create_app(services)) as client:
        guard = login(client, Role.GUARD)
        facilities = login(client, Role.FACILITIES)

        def get(url: str, headers: dict[str, str]) -> Any:
            response = client.get(url, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
            return response.json()

        def by_time(i: int) -> Any:
            since = mid + timedelta(minutes=37 * i)
            query = {"since": _iso(since), "until": _iso(since + timedelta(hours=1))}
            return get(f"/api/access?{urlencode(query)}", guard)

        def by_gate(i: int) -> Any:
            b = semester.scale.buildings[i % len(semester.scale.buildings)]
            return get(f"/api/access?building={b}&gate=g{1 + i % GATES_PER_BUILDING}", guard)

        def chart(i: int) -> Any:
            key = device_keys[rng.randrange(len(device_keys))]
            query = {"field": "power_w", "since": _iso(end - timedelta(days=7)), "limit": 10000}
            return get(f"/api/devices/{key}/series?{urlencode(query)}", facilities)

        queries: list[tuple[str, Callable[[int], object]]] = [
            ("open_alerts", lambda i: get("/api/alerts?state=open", guard)),
            ("access_by_person", lambda i: get(f"/api/access?person={rng.choice(people)}", guard)),
            ("access_by_gate", by_gate),
            ("access_by_time", by_time),
            ("roll_call", lambda i: get(f"/api/occupancy/{building}/roll-call", guard)),
            ("board", lambda i: get("/api/devices", facilities)),
            ("chart", chart),
            ("welfare", lambda i: gw.welfare_signals(end)),
        ]
        for name, call in queries:
            slow = name in ("welfare", "roll_call")
            timings.append(measure(name, call, max(3, repeats // 4) if slow else repeats, recorder))
    jobs: dict[str, Any] = {}
    t = time.perf_counter()
    report = verify_chain(services.engine)
    jobs["verify_s"] = time.perf_counter() - t
    jobs["verify_rows"] = report.rows
    jobs["verify_ok"] = report.ok
    tracemalloc.start()
    t = time.perf_counter()
    verify_chain(services.engine)
    jobs["verify_traced_s"] = time.perf_counter() - t
    jobs["verify_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    def retention(i: int) -> None:
        clock.now = end + timedelta(hours=i + 1)
        gw._hourly(clock.now)

    timings.append(measure("retention", retention, max(3, repeats // 4), recorder))
    recorder.uninstall()
    clock.now = end
    return timings, jobs


# --- sizes, backends, the run -----------------------------------------------------------------


def database_bytes(engine: Engine) -> int:
    """The database's size on disk (SQLite after a WAL checkpoint)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        return int(pages) * int(size)


def table_bytes(engine: Engine) -> dict[str, int]:
    """Bytes per table including its indexes (largest first; {} when SQLite lacks dbstat)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT relname, pg_total_relation_size(relid)"
                    " FROM pg_catalog.pg_statio_user_tables"
                )
            ).all()
        else:
            try:
                rows = conn.exec_driver_sql(
                    "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
                    "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1"
                ).all()
            except Exception:  # dbstat is a compile-time option
                return {}
    return dict(sorted(((str(n), int(b)) for n, b in rows), key=lambda kv: -kv[1]))


def ingest_rates(
    empty: tuple[Gateway, SimClock], full: tuple[Gateway, SimClock], messages: Sequence[Message]
) -> tuple[float, float]:
    """Access events per second of a fresh batch into the empty and the full database, in
    alternating slices so that drift on the machine touches both alike."""
    seconds = [0.0, 0.0]
    stored = [0, 0]
    slice_size = 5 * BATCH
    for start in range(0, len(messages), slice_size):
        part = messages[start : start + slice_size]
        for n, (gw, clock) in enumerate((empty, full)):
            t = time.monotonic()
            stored[n] += feed(gw, clock, part)
            seconds[n] += time.monotonic() - t
    return stored[0] / seconds[0], stored[1] / seconds[1]


@dataclass
class Backend:
    name: str
    url: str
    empty_url: str


def run_database(
    backend: Backend, workdir: Path, scale: Scale, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Fill one database with a semester, measure it; the figures (and the counts checked)."""
    zone_config = GatewayConfig.model_validate(gateway_config(workdir, 1)).welfare
    first_day = datetime.now(zone_config.zone).date() - timedelta(days=scale.days)
    semester = Semester(scale, zone_config.zone, zone_config.curfew_time.hour, first_day)
    clock = SimClock(semester.day_start(0))
    (workdir / "full").mkdir(parents=True, exist_ok=True)
    gw = make_gateway(workdir / "full", backend.url, scale, clock)
    try:
        add_people(gw, semester)
        log(
            f"{backend.name}: filling {scale.days} days x {scale.students:,} students, "
            f"{len(semester.devices):,} appliances"
        )
        filled = fill(gw, clock, semester, log)
        engine = gw.services.engine
        with gw.services.sessions() as s:
            events = int(s.scalar(select(func.count()).select_from(AccessRecord)) or 0)
            late_rows = int(s.scalar(select(func.count()).select_from(LateReturn)) or 0)
            state_rows = int(s.scalar(select(func.count()).select_from(DeviceStateRecord)) or 0)
            alert_rows = int(s.scalar(select(func.count()).select_from(AlertRow)) or 0)
            open_alerts = int(
                s.scalar(select(func.count()).where(AlertRow.state != "cleared")) or 0
            )
        size = database_bytes(engine)
        tables = table_bytes(engine)
        series_bytes = sum(
            p.stat().st_size for p in (workdir / "full").glob("series.db*") if p.is_file()
        )
        log(
            f"{backend.name}: filled in {filled.seconds:,.0f} s: {events:,} access events "
            f"({filled.counts.access / filled.seconds:,.0f}/s), {filled.stored:,} messages "
            f"({filled.stored / filled.seconds:,.0f}/s); {state_rows:,} device states, "
            f"{filled.counts.telemetry:,} telemetry readings, {alert_rows:,} alerts "
            f"({open_alerts:,} open), {late_rows:,} late returns"
        )
        log(
            f"{backend.name}: database {size / 2**20:,.1f} MiB "
            f"({size / 2**20 / max(events, 1) * 1e6:,.0f} MiB per million access events); "
            f"series store {series_bytes / 2**20:,.1f} MiB"
        )
        for name, nbytes in list(tables.items())[:6]:
            log(f"    {name:<20} {nbytes / 2**20:10,.1f} MiB")
        timings, jobs = run_queries(gw, clock, semester, scale.repeats)

        ratio_day = [m for m in semester.passes(scale.days) if m[1].endswith("/event")][
            :RATIO_EVENTS
        ]
        (workdir / "empty").mkdir(parents=True, exist_ok=True)
        empty_clock = SimClock(clock.now)
        empty = make_gateway(workdir / "empty", backend.empty_url, scale, empty_clock)
        try:
            add_people(empty, semester)
            empty_rate, full_rate = ingest_rates((empty, empty_clock), (gw, clock), ratio_day)
        finally:
            close_gateway(empty)
    finally:
        close_gateway(gw)
    by_name = {t.name: t for t in timings}
    log(f"\n{backend.name}: {events:,} access events, p50/p95 over repeated runs")
    log(f"  {'query':<18}{'runs':>5}{'p50 ms':>10}{'p95 ms':>10}   slowest statement's plan")
    for t in timings:
        log(
            f"  {t.name:<18}{len(t.ms):>5}{t.p50:>10.1f}{t.p95:>10.1f}   "
            + (t.plan[0] if t.plan else "(no SQL)")
        )
        for line in t.plan[1:]:
            log(f"  {'':<43}   {line}")
    log(
        f"  audit verify: {jobs['verify_rows']:,} rows in {jobs['verify_s']:.2f} s "
        f"({jobs['verify_rows'] / jobs['verify_s']:,.0f} rows/s), ok={jobs['verify_ok']}; "
        f"peak Python memory {jobs['verify_peak_mib']:.1f} MiB "
        f"(traced run {jobs['verify_traced_s']:.2f} s)"
    )
    log(
        f"  ingest of a fresh day ({len(ratio_day):,} access events): empty database "
        f"{empty_rate:,.0f}/s, full database {full_rate:,.0f}/s, "
        f"ratio {full_rate / empty_rate:.2f}"
    )
    worst = max(CONSOLE, key=lambda n: by_name[n].p95)
    return {
        "events": events,
        "generated_events": filled.counts.access,
        "messages_generated": filled.counts.messages,
        "messages_stored": filled.stored,
        "late_returns_generated": filled.counts.late,
        "late_return_rows": late_rows,
        "device_states_generated": filled.counts.states,
        "device_state_rows": state_rows,
        "alerts": alert_rows,
        "open_alerts": open_alerts,
        "fill_s": round(filled.seconds, 1),
        "fill_events_per_s": round(filled.counts.access / filled.seconds),
        "fill_messages_per_s": round(filled.stored / filled.seconds),
        "worst_console_p95_ms": round(by_name[worst].p95, 1),
        "worst_console_query": worst,
        "roll_call_ms": round(by_name["roll_call"].p95, 1),
        "p95_ms": {t.name: round(t.p95, 1) for t in timings},
        "p50_ms": {t.name: round(t.p50, 1) for t in timings},
        "verify_s": round(jobs["verify_s"], 2),
        "verify_ok": jobs["verify_ok"],
        "verify_rows": jobs["verify_rows"],
        "verify_peak_mib": round(jobs["verify_peak_mib"], 1),
        "db_mib": round(size / 2**20, 1),
        "db_mib_per_million_events": round(size / 2**20 / max(events, 1) * 1e6, 1),
        "series_mib": round(series_bytes / 2**20, 1),
        "ingest_empty_per_s": round(empty_rate),
        "ingest_full_per_s": round(full_rate),
        "ingest_ratio_full_vs_empty": round(full_rate / empty_rate, 3),
    }


@contextmanager
def backends(root: Path, log: Callable[[str], None]) -> Iterator[list[Backend]]:
    """SQLite files, and a throwaway PostgreSQL server when its binaries are installed."""
    found = [
        Backend(
            "sqlite",
            f"sqlite:///{root / 'sqlite' / 'full' / 'gateway.db'}",
            f"sqlite:///{root / 'sqlite' / 'empty' / 'gateway.db'}",
        )
    ]
    from tests.postgres import Postgres, postgres_bindir

    server: Postgres | None = None
    try:
        postgres_bindir()
        server = Postgres(root / "pg").start()
        admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE empty"))
        admin.dispose()
        found.append(Backend("postgresql", server.url, server.url.rsplit("/", 1)[0] + "/empty"))
    except (RuntimeError, OSError) as exc:
        log(f"postgresql: skipped ({exc})")
    try:
        yield found
    finally:
        if server is not None:
            server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--appliances", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--live-days", type=int, default=7, help="last days whose appliance messages are ingested"
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 days x 2,000 students, 200 appliances"
    )
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = parser.parse_args(argv)
    scale = (
        Scale(days=5, students=2_000, appliances=200, repeats=args.repeats)
        if args.quick
        else Scale(
            days=args.days, students=args.students, appliances=args.appliances, repeats=args.repeats
        )
    )
    scale = replace(scale, live_days=args.live_days)
    results: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="dormguard-scale-"))
    root.chmod(0o755)  # the PostgreSQL server (its own user when run as root) works below it
    try:
        with backends(root, print) as found:
            for backend in found:
                if args.only is not None and backend.name != args.only:
                    continue
                results[backend.name] = run_database(backend, root / backend.name, scale)
                print(flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"days": scale.days, "students": scale.students, **results}))


if __name__ == "__main__":
    main()
