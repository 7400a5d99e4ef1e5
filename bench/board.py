"""The facilities board of a campus: GET /api/devices over 2,000 appliances, cached vs not.

2,000 appliance states (10 buildings, 5 kinds, some faults) go through the gateway's real
ingest into a SQLite database; then a facilities login asks for the whole board through the
API (FastAPI TestClient), in three ways in the same run:

- ``cold``: every row encoded afresh (the encoding cache emptied before each request: what the
  route cost before gateway/api/board.py);
- ``warm``: nothing changed since the last request (the board polled);
- ``one_change``: one appliance changed state through the ingest before each request.

Prints p50/p95 per way and, last, one JSON line: cold_p50_ms, cold_p95_ms, warm_p50_ms,
warm_p95_ms, one_change_p50_ms, one_change_p95_ms, ratio (cold p50 / warm p50).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from contracts.models import DeviceState
from contracts.topics import DeviceAddress, DeviceChannel, device_topic
from gateway.api import create_app
from gateway.api.routes import devices as device_routes
from gateway.app import Gateway, build_gateway
from gateway.auth.roles import Role
from gateway.config import GatewayConfig
from gateway.db import migrate
from gateway.ingest.batch import Inbound
from tests.gatewaykit import login
from tests.gatewayproc import gateway_config

APPLIANCES = 2000
RUNS = 60
KINDS = ("washer", "washer", "dryer", "water_dispenser", "hair_dryer")
STATUS = {"washer": "running", "dryer": "idle", "water_dispenser": "heating", "hair_dryer": "idle"}


def state(n: int, power_w: float) -> Inbound:
    building, room, kind = f"b{n % 10}", f"r{n // 50}", KINDS[n % 5]
    device_id = f"{kind}-{n}"
    message = DeviceState(
        producer="bridge:campus/hall",
        site="campus",
        building=building,
        room=room,
        device_id=device_id,
        kind=kind,  # type: ignore[arg-type]
        status=STATUS[kind],  # type: ignore[arg-type]
        power_w=power_w,
        energy_kwh=12.3,
        temperature_c=88.1 if kind == "water_dispenser" else None,
        remaining_s=600.0 if kind == "washer" else None,
        sessions=3,
        faults=["leak"] if n % 97 == 0 else [],
        filter_life_pct=77.0 if kind == "water_dispenser" else None,
    )
    topic = device_topic(DeviceAddress("campus", building, room, device_id), DeviceChannel.STATE)
    return Inbound(topic, message.to_bytes())


def gateway(folder: Path) -> Gateway:
    raw = gateway_config(folder, 1, ingest_worker=False)
    raw["buildings"] = [{"id": f"b{i}"} for i in range(10)]
    raw["gates"] = [{"building": "b0", "id": "g1", "direction": "in"}]
    gw = build_gateway(GatewayConfig.model_validate(raw))
    migrate(gw.services.engine)
    return gw


def timed(call: Callable[[int], None]) -> tuple[float, float]:
    ms = []
    for i in range(RUNS):
        t = time.perf_counter()
        call(i)
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    return statistics.median(ms), ms[int(len(ms) * 0.95) - 1]


def main() -> None:
    gw = gateway(Path(tempfile.mkdtemp(prefix="dormguard-board-")))
    stored = gw.process([state(n, 1000.0) for n in range(APPLIANCES)]).stored
    assert stored == APPLIANCES, stored
    figures: dict[str, float] = {}
    with TestClient(create_app(gw.services)) as client:
        headers = login(client, Role.FACILITIES)

        def board() -> None:  # what a console waits for: the bytes (its parsing is its own)
            response = client.get("/api/devices", headers=headers)
            assert response.status_code == 200 and response.content.startswith(b"[{")

        def cold(_i: int) -> None:
            device_routes._CACHE._entries.clear()
            board()

        def one_change(i: int) -> None:
            gw.process([state(i * 7 % APPLIANCES, 2000.0 + i)])
            board()

        whole = client.get("/api/devices", headers=headers).json()  # warms the cache too
        assert len(whole) == APPLIANCES, len(whole)
        for name, call in (
            ("cold", cold),
            ("warm", lambda _i: board()),
            ("one_change", one_change),
        ):
            p50, p95 = timed(call)
            figures[f"{name}_p50_ms"], figures[f"{name}_p95_ms"] = round(p50, 1), round(p95, 1)
            print(f"{name:<11} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   ({RUNS} requests)")
    gw.services.engine.dispose()
    figures["ratio"] = round(figures["cold_p50_ms"] / figures["warm_p50_ms"], 2)
    print(json.dumps({"bench": "board", "appliances": APPLIANCES, **figures}))


if __name__ == "__main__":
    main()
