"""Filling a database with a semester through the gateway's own ingest (Gateway.process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.campus.semester import (
    BATCH,
    GATES_PER_BUILDING,
    Counts,
    Message,
    Scale,
    Semester,
    SimClock,
)
from contracts.models import DeviceState
from contracts.registry import parse_message
from gateway.app import Gateway, build_gateway, seed_gates
from gateway.config import GatewayConfig
from gateway.db import migrate
from gateway.db.bulk import bulk_insert, table_of
from gateway.db.schema import DeviceStateRecord, Person
from gateway.ingest.batch import Inbound
from gateway.ingest.store import device_key
from gateway.timeseries.mapping import points_for
from tests.gatewayproc import gateway_config


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
    writer = gw.services.series_writer
    for start in range(0, len(points), 50_000):  # within the store's bounded queue
        writer.write(points[start : start + 50_000])
        if not writer.flush(600.0):
            raise RuntimeError("the series store did not take the backfilled telemetry")
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
        # A simulated day goes by in seconds: let the series store catch up, or its bounded
        # queue drops points (a real day gives it 24 hours).
        if not gw.services.series_writer.flush(600.0):
            raise RuntimeError(f"the series store did not catch up after day {day + 1}")
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
