"""The simulated semester: students, gates, passes, appliances, and the messages they send."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import select

from contracts.access import Flag, Reason
from contracts.models import SCHEMA_VERSION, new_event_id
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
from gateway.db.schema import Gate
from gateway.services import Services

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
# a gate's message before its outbox numbers it: time, building, gate, channel, payload
GateDraft = tuple[datetime, str, str, GateChannel, dict[str, Any]]


def iso_text(ts: datetime) -> str:
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

    def resume_sequences(self, services: Services) -> None:
        """Go on numbering each gate's messages after the last one its row records (a copied
        semester)."""
        with services.sessions() as session:
            for gate in session.scalars(select(Gate)):
                if gate.last_seq is not None:
                    self.seq[(gate.building, gate.gate_id)] = gate.last_seq

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
    ) -> GateDraft:
        face = method == "face"
        payload = {
            **_gate_head(ts, building, gate),
            "direction": direction,
            "decision": decision,
            "method": method,
            "person_id": person,
            "reason": reason,
            "flags": list(flags),
            "distance": round(self.rng.uniform(0.28, 0.45), 3) if face and person else None,
            "margin": round(self.rng.uniform(0.2, 0.5), 3) if face and person else None,
            "faces_in_view": 1 if face else 0,
        }
        self.counts.access += 1
        if decision == "denied":
            self.counts.denied += 1
        return ts, building, gate, GateChannel.EVENT, payload

    def passes(self, day: int) -> list[Message]:
        """One day of gate traffic: 4 passes per student, denials, late returns, doors; in time
        order, each gate's messages numbered in that order as its outbox does."""
        rng, start = self.rng, self.day_start(day)
        curfew = start + timedelta(hours=self.curfew_hour)
        out: list[GateDraft] = []
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
        out.sort(key=lambda draft: draft[0])
        return [self._sent(*draft) for draft in out]

    def _sent(
        self, ts: datetime, building: str, gate: str, channel: GateChannel, payload: dict[str, Any]
    ) -> Message:
        """The message as the gate's outbox sends it: its next sequence number on."""
        payload["seq"] = self._next_seq(building, gate)
        return ts, gate_topic(GateAddress(SITE, building, gate), channel), orjson.dumps(payload)

    def _door(self, ts: datetime, building: str, gate: str, kind: str = "held_open") -> GateDraft:
        payload = {
            **_gate_head(ts, building, gate),
            "kind": kind,
            "open_for_s": round(self.rng.uniform(35, 120), 1) if kind == "held_open" else None,
        }
        self.counts.doors += 1
        return ts, building, gate, GateChannel.DOOR, payload

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
                **_device_head(dev, ts, sample, base),
                "status": change.status,
                "since": iso_text(ts),
                "faults": list(change.faults),
                "online": True,
                "temperature_c": sample.temperature_c,
                "sessions": change.sessions,
            }
        )

    def _reading(self, dev: SimDevice, ts: datetime, sample: ApplianceTrace, base: float) -> bytes:
        self.counts.telemetry += 1
        reading: dict[str, Any] = {
            **_device_head(dev, ts, sample, base),
            "voltage_v": round(sample.voltage_v, 1),
            "current_a": round(sample.current_a, 3),
        }
        if sample.temperature_c is not None:
            reading["temperature_c"] = round(sample.temperature_c, 1)
        return orjson.dumps(reading)


def _gate_head(ts: datetime, building: str, gate: str) -> dict[str, Any]:
    """What every message of a gate carries."""
    return {
        "schema": SCHEMA_VERSION,
        "event_id": new_event_id(ts),
        "ts": iso_text(ts),
        "producer": f"gate-{building}-{gate}",
        "site": SITE,
        "building": building,
        "gate_id": gate,
    }


def _device_head(
    dev: SimDevice, ts: datetime, sample: ApplianceTrace, base: float
) -> dict[str, Any]:
    """What a device state and a telemetry reading of the bridge both carry."""
    return {
        "schema": SCHEMA_VERSION,
        "event_id": new_event_id(ts),
        "ts": iso_text(ts),
        "producer": f"bridge-{dev.building}",
        "site": SITE,
        "building": dev.building,
        "room": dev.room,
        "device_id": dev.device_id,
        "kind": dev.kind.value,
        "power_w": round(sample.power_w, 1),
        "energy_kwh": round(base + sample.energy_kwh, 3),
    }


# --- the gateway over one database ------------------------------------------------------------
