"""Time-series points of messages delivered again, through the real pipeline on one SQLite file.

A gateway killed between its commit and handing the batch's points to the writers gets the
same messages from the broker at its restart (same client id): duplicates by then, but it
stored them itself, so it makes their points again. A replica that gets an event another
replica stored makes none for the writers (every replica receives every event: they would
double the writes), except an appliance state's for the replica's own embedded store.
"""

from __future__ import annotations

from pathlib import Path

from contracts.models import DeviceState
from contracts.topics import DeviceAddress, DeviceChannel, device_topic
from gateway.app import Gateway, build_gateway
from gateway.config import GatewayConfig
from gateway.db import migrate
from gateway.ingest.batch import Inbound
from tests.gatewayproc import BUILDING, gateway_config

TOPIC = device_topic(DeviceAddress("campus", BUILDING, "laundry", "w1"), DeviceChannel.STATE)


def _gateway(tmp_path: Path, client_id: str) -> Gateway:
    raw = gateway_config(tmp_path, 1, ingest_worker=False)  # one database file for both
    raw["mqtt"]["client_id"] = client_id
    raw["timeseries"] = {"sqlite": {"path": str(tmp_path / f"series-{client_id}.db")}}
    gw = build_gateway(GatewayConfig.model_validate(raw))
    migrate(gw.services.engine)
    return gw


def _states(n: int) -> list[Inbound]:
    return [
        Inbound(
            TOPIC,
            DeviceState(
                producer="bridge:campus/hall",
                site="campus",
                building=BUILDING,
                room="laundry",
                device_id="w1",
                kind="washer",
                status="running" if i % 2 else "idle",
                power_w=100.0 + i,
            ).to_bytes(),
        )
        for i in range(n)
    ]


def _points(out: object, which: str = "points") -> list[tuple[str, object, dict[str, object]]]:
    return sorted((p.measurement, p.ts, dict(p.fields)) for p in getattr(out, which))


def test_own_redeliveries_get_their_points_again_and_other_replicas_none(
    tmp_path: Path,
) -> None:
    a = _gateway(tmp_path, "gw-a")
    b = _gateway(tmp_path, "gw-b")
    try:
        batch = _states(6)
        first = a.process(batch)  # stored; suppose a dies before the points are written
        assert first.stored == 6 and first.points

        restarted = _gateway(tmp_path, "gw-a")  # same client id: the broker redelivers to it
        try:
            again = restarted.process(batch)
        finally:
            restarted.services.engine.dispose()
        assert (again.stored, again.duplicates) == (0, 6)
        assert _points(again) == _points(first)

        other = b.process(batch)  # the same events, stored by a, reach replica b
        assert (other.stored, other.duplicates) == (0, 6)
        assert other.points == []  # for every writer: a's points are there already
        # b keeps the appliance history in its own embedded store too (its device charts).
        assert _points(other, "local_points") == _points(first)

        # A batch holding one new event twice stores it once and makes its points once.
        fresh = _states(8)[6:]
        twice = b.process([*fresh, *fresh])
        assert (twice.stored, twice.duplicates) == (2, 2)
        assert len(twice.points) == len(first.points) // 6 * 2
    finally:
        a.services.engine.dispose()
        b.services.engine.dispose()
