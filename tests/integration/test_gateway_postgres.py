"""The gateway's SQL state on a real PostgreSQL server (the database for several replicas).

Rules: migrations run; a batch stores the access log (hash chain verifies), presence upserts,
dedup and alerts exactly as on SQLite; two writers appending at once keep one unbroken chain
(PostgreSQL advisory lock).
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from contracts.topics import GateChannel
from gateway.app import Gateway, build_gateway
from gateway.audit import verify_chain
from gateway.config import GatewayConfig
from gateway.db import migrate, schema_is_current
from gateway.db.schema import AccessRecord, AlertRow, Presence
from gateway.ingest.batch import Inbound
from tests.gatewayproc import access_event, door_event, event_topic, gateway_config
from tests.postgres import Postgres


def _gateway(tmp_path: Path, postgres: Postgres, name: str = "a") -> Gateway:
    raw = gateway_config(tmp_path / name, 1, ingest_worker=False)  # the pipeline, in-process
    raw["database"] = {"url": postgres.url}
    (tmp_path / name).mkdir(exist_ok=True)
    gw = build_gateway(GatewayConfig.model_validate(raw))
    migrate(gw.services.engine)
    return gw


def _count(gw: Gateway, model: type) -> int:
    with gw.services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_batch_is_stored_on_postgresql_as_on_sqlite(tmp_path: Path, postgres: Postgres) -> None:
    gw = _gateway(tmp_path, postgres)
    assert schema_is_current(gw.services.engine)
    events = [access_event(i, person=f"s{i % 5}") for i in range(1, 51)]
    out = gw.process([Inbound(event_topic(), ev.to_bytes()) for ev in events])
    again = gw.process([Inbound(event_topic(), ev.to_bytes()) for ev in events[:10]])
    door = door_event("forced_open")
    gw.process([Inbound(event_topic(channel=GateChannel.DOOR), door.to_bytes())])
    assert (out.stored, again.duplicates) == (50, 10)
    assert _count(gw, AccessRecord) == 50
    assert _count(gw, Presence) == 5
    with gw.services.sessions() as s:
        assert s.scalars(select(AlertRow.type)).all() == ["door_forced_open"]
    report = verify_chain(gw.services.engine)
    assert report.ok and report.rows == 50
    gw.services.engine.dispose()


def test_two_writers_at_once_keep_one_unbroken_chain(tmp_path: Path, postgres: Postgres) -> None:
    writers = [_gateway(tmp_path, postgres, name) for name in ("w1", "w2")]
    start = _count(writers[0], AccessRecord)
    errors: list[BaseException] = []

    def run(gw: Gateway, offset: int) -> None:
        try:
            for batch in range(10):
                events = [access_event(offset + batch * 20 + i, gate="g1") for i in range(1, 21)]
                gw.process([Inbound(event_topic(), ev.to_bytes()) for ev in events])
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(gw, 10_000 * (n + 1))) for n, gw in enumerate(writers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert _count(writers[0], AccessRecord) == start + 400
    report = verify_chain(writers[0].services.engine)
    assert report.ok, report
    for gw in writers:
        gw.services.engine.dispose()
