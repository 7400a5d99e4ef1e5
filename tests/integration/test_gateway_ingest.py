"""The gateway's MQTT ingest against a real mosquitto and real SQLite files.

Rules checked: valid events are stored once (dedup by event id), with a hash-chained access log;
invalid payloads become dead letters with the reason and never stop ingest; alerts are raised from
events; a gateway killed with kill -9 under load loses no acknowledged event.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contracts.topics import GateChannel
from gateway.app import Gateway, build_gateway
from gateway.audit import verify_chain
from gateway.config import GatewayConfig
from gateway.db.schema import AccessRecord, AlertRow, DeadLetter, Gate, Presence
from tests.broker import Broker
from tests.gatewayproc import (
    BUILDING,
    GATE,
    BackgroundPublisher,
    Publisher,
    access_event,
    door_event,
    event_topic,
    gateway_config,
    spawn_gateway,
    wait_until,
    write_config,
)


@pytest.fixture(params=[False, True], ids=["in-process", "worker-process"])
def gateway(broker: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    """A started gateway, storing batches in-process or in its ingest worker process."""
    raw = gateway_config(tmp_path, broker.port, ingest_worker=request.param)
    config = GatewayConfig.model_validate(raw)
    gw = build_gateway(config)
    gw.start(wait_broker_s=10)
    assert gw.ingest.wait_ready(10), "gateway did not subscribe"
    yield gw
    gw.stop()


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Publisher]:
    pub = Publisher(broker.port)
    yield pub
    pub.stop()


def _replicas(broker: Broker, tmp_path: Path, delivery: str = "all") -> list[Gateway]:
    """Two started gateways in one replica group, on one SQLite database."""
    replicas = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        raw = gateway_config(tmp_path / name, broker.port)
        raw["database"] = {"url": f"sqlite:///{tmp_path / 'shared.db'}"}
        # A group of its own: mosquitto keeps handing a group's messages to the stopped
        # sessions of an earlier test's replicas (see docs/operations.md).
        group = f"gw{tmp_path.name[-12:]}".replace("_", "")
        raw["mqtt"] = {
            **raw["mqtt"],
            "client_id": f"gw-{name}-{group}",
            "shared_group": group,
            "replica_delivery": delivery,
        }
        gw = build_gateway(GatewayConfig.model_validate(raw))
        gw.start(wait_broker_s=10)
        assert gw.ingest.wait_ready(10)
        replicas.append(gw)
    return replicas


def _bearer(token: str) -> dict[str, str]:
    """Headers authenticating the live-alert WebSocket (as a non-browser client does)."""
    return {"Authorization": f"Bearer {token}"}


def _count(gw: Gateway, model: type) -> int:
    with gw.services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_access_events_are_stored_once_in_a_verified_chain(
    gateway: Gateway, publisher: Publisher
) -> None:
    events = [access_event(i) for i in range(1, 41)]
    for ev in events:
        publisher.publish(event_topic(), ev.to_bytes())
    for ev in events[:10]:  # at-least-once redelivery
        publisher.publish(event_topic(), ev.to_bytes())
    wait_until(lambda: gateway.services.counters.received >= 50, 10, "50 deliveries")
    assert _count(gateway, AccessRecord) == 40
    assert gateway.services.counters.duplicates == 10
    report = verify_chain(gateway.services.engine)
    assert report.ok and report.rows == 40
    with gateway.services.sessions() as s:
        gate = s.get(Gate, f"campus/{BUILDING}/{GATE}")
        assert gate is not None and gate.last_seq == 40
        inside = s.scalars(select(Presence).where(Presence.inside)).all()
        assert {p.person_id for p in inside} == {f"p{i % 50}" for i in range(1, 41)}


def test_malformed_payloads_become_dead_letters_and_ingest_goes_on(
    gateway: Gateway, publisher: Publisher
) -> None:
    bad = [
        b"not json",
        b"{}",
        b'{"schema": 1}',
        json.dumps({**json.loads(access_event(1).to_bytes()), "decision": "maybe"}).encode(),
        json.dumps({**json.loads(access_event(1).to_bytes()), "extra": 1}).encode(),
        b"\xff\xfe",
        b"[" * 5000,
    ]
    for payload in bad:
        publisher.publish(event_topic(), payload)
    # A gate may not report for another gate: the payload must match its topic.
    publisher.publish(event_topic(gate="g2"), access_event(2).to_bytes())
    good = access_event(3)
    publisher.publish(event_topic(), good.to_bytes())
    wait_until(lambda: _count(gateway, AccessRecord) == 1, 10, "the valid event")
    wait_until(lambda: _count(gateway, DeadLetter) == len(bad) + 1, 10, "dead letters")
    with gateway.services.sessions() as s:
        letters = s.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    reasons = [d.reason for d in letters]
    assert any("decision" in r for r in reasons)
    assert any("extra" in r for r in reasons)
    assert any("published on the topic of" in r for r in reasons)
    assert all(event_topic().rsplit("/", 3)[0] in d.topic or "g2" in d.topic for d in letters)
    assert letters[0].payload == b"not json"


def test_unknown_faces_raise_one_alert_with_a_repeat_count(
    gateway: Gateway, publisher: Publisher
) -> None:
    for i in range(1, 6):
        publisher.publish(event_topic(), access_event(i, decision="denied").to_bytes())
    wait_until(lambda: _count(gateway, AlertRow) >= 1, 10, "an unknown-face alert")
    time.sleep(0.3)
    with gateway.services.sessions() as s:
        alerts = s.scalars(select(AlertRow).where(AlertRow.type == "unknown_face")).all()
    assert len(alerts) == 1
    assert alerts[0].originator.endswith(f"{BUILDING}/{GATE}")
    assert alerts[0].count >= 1


def test_door_forced_open_raises_a_critical_alert(gateway: Gateway, publisher: Publisher) -> None:
    publisher.publish(event_topic(channel=GateChannel.DOOR), door_event("forced_open").to_bytes())
    wait_until(lambda: _count(gateway, AlertRow) >= 1, 10, "a forced-open alert")
    with gateway.services.sessions() as s:
        alert = s.scalars(select(AlertRow)).one()
    assert alert.type == "door_forced_open"
    assert alert.severity == 4


@pytest.mark.slow
@pytest.mark.parametrize("worker", [False, True], ids=["in-process", "worker-process"])
def test_kill_9_under_load_loses_no_acknowledged_event(
    broker: Broker, tmp_path: Path, worker: bool
) -> None:
    """Events acknowledged by the broker all end up stored exactly once, across a kill -9."""
    raw = gateway_config(tmp_path, broker.port, ingest_worker=worker)
    config = write_config(tmp_path / "gateway.yaml", raw)
    log = tmp_path / "gateway.log"
    db = tmp_path / "gateway.db"

    def stored() -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(db) as c:
            try:
                return int(c.execute("select count(*) from access_log").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    proc = spawn_gateway(config, log)
    try:
        wait_until(lambda: "API on" in log.read_text(errors="replace"), 30, "gateway start")
        load = BackgroundPublisher(broker.port, count=3000, rate_per_s=600)
        load.start()
        wait_until(lambda: stored() > 500, 30, "ingest under load")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed_at = stored()
        time.sleep(1.0)  # the broker queues for our persistent session meanwhile
        proc = spawn_gateway(config, log)
        load.join(60)
        assert not load.is_alive()
        wait_until(lambda: stored() >= 3000, 60, "every acknowledged event")
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert killed_at < 3000, "the kill happened after everything was stored; test proves nothing"
    with sqlite3.connect(db) as c:
        ids = [r[0] for r in c.execute("select event_id from access_log")]
    assert len(ids) == len(set(ids)) == 3000
    assert set(ids) == set(load.acked)
    from gateway.db import open_engine

    assert verify_chain(open_engine(f"sqlite:///{db}")).ok


def test_a_gap_in_a_gates_sequence_raises_event_gap(gateway: Gateway, publisher: Publisher) -> None:
    for i in (1, 2, 5):
        publisher.publish(event_topic(), access_event(i).to_bytes())
    wait_until(lambda: _count(gateway, AlertRow) >= 1, 10, "an event-gap alert")
    with gateway.services.sessions() as s:
        alert = s.scalars(select(AlertRow).where(AlertRow.type == "event_gap")).one()
    assert "3" in json.dumps(alert.detail) and "4" in json.dumps(alert.detail)


def test_appliance_fault_raises_and_clears_with_the_device_state(
    gateway: Gateway, publisher: Publisher
) -> None:
    from contracts.models import DeviceState
    from contracts.topics import DeviceAddress, DeviceChannel, device_topic
    from gateway.db.schema import Device

    topic = device_topic(DeviceAddress("campus", BUILDING, "laundry", "w1"), DeviceChannel.STATE)

    def state(**kw: object) -> bytes:
        return DeviceState(
            producer="bridge:campus/hall",
            site="campus",
            building=BUILDING,
            room="laundry",
            device_id="w1",
            kind="washer",
            **kw,  # type: ignore[arg-type]
        ).to_bytes()

    publisher.publish(topic, state(status="running", faults=["leak"]))
    wait_until(lambda: _count(gateway, AlertRow) == 1, 10, "a leak alert")
    with gateway.services.sessions() as s:
        alert = s.scalars(select(AlertRow)).one()
        device = s.get(Device, f"campus/{BUILDING}/laundry/w1")
        assert device is not None and device.faults == ["leak"] and device.status == "running"
    assert alert.type == "appliance_fault" and alert.severity == 4 and alert.condition_active
    publisher.publish(topic, state(status="idle"))

    def cleared() -> bool:
        with gateway.services.sessions() as s:
            return s.scalars(select(AlertRow)).one().condition_active is False

    wait_until(cleared, 10, "the alert's condition to end")


def test_an_mqtt_event_reaches_a_guards_websocket(gateway: Gateway, publisher: Publisher) -> None:
    """Publish -> ingest -> alert -> WebSocket, through the real app."""
    from fastapi.testclient import TestClient

    from gateway.api import create_app
    from gateway.auth.users import create_user

    with gateway.services.sessions.begin() as s:
        create_user(s, "night-guard", "night-guard-pw-1", "guard", mode="development")
    with TestClient(create_app(gateway.services)) as client:
        login = client.post(
            "/api/auth/login", json={"username": "night-guard", "password": "night-guard-pw-1"}
        )
        token = login.json()["token"]
        with client.websocket_connect("/api/ws/alerts", headers=_bearer(token)) as ws:
            assert ws.receive_json()["type"] == "snapshot"
            started = time.monotonic()
            publisher.publish(
                event_topic(channel=GateChannel.DOOR), door_event("forced_open").to_bytes()
            )
            while True:
                message = ws.receive_json()
                if message["type"] == "alert":
                    break
            elapsed = time.monotonic() - started
    assert message["alert"]["type"] == "door_forced_open"
    assert message["alert"]["state"] == "active"
    assert elapsed < 5


@pytest.mark.parametrize("delivery", ["shared", "all"])
def test_replicas_store_each_event_once_whether_split_or_all_receive_it(
    broker: Broker, tmp_path: Path, delivery: str
) -> None:
    """Two gateways on one database, the event stream split by a $share group or received by
    both: every event stored exactly once."""
    replicas = _replicas(broker, tmp_path, delivery)
    pub = Publisher(broker.port, client_id="share-pub")
    try:
        events = [access_event(i) for i in range(1, 401)]
        pub.publish_many([(event_topic(), ev.to_bytes()) for ev in events])
        wait_until(lambda: _count(replicas[0], AccessRecord) == 400, 20, "400 stored events")
        time.sleep(0.3)
        if delivery == "all":
            wait_until(
                lambda: sum(gw.services.counters.duplicates for gw in replicas) == 400,
                20,
                "the second copy of each event dropped",
            )
        received = [gw.services.counters.received for gw in replicas]
        stored = [gw.services.counters.stored for gw in replicas]
    finally:
        pub.stop()
        for gw in replicas:
            gw.stop()
    assert sum(stored) == 400, stored
    if delivery == "shared":
        assert sum(received) == 400, received
        assert min(received) > 0, f"one replica got nothing: {received}"
    else:
        assert received == [400, 400], received
    from gateway.db import open_engine

    engine = open_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    report = verify_chain(engine)
    assert report.ok and report.rows == 400


def test_every_replica_keeps_the_whole_appliance_history_for_its_device_charts(
    broker: Broker, tmp_path: Path
) -> None:
    """Each replica's console charts from its own embedded store: it gets every telemetry
    reading (not a shared share) and the states the other replica stored as well."""
    from datetime import UTC, datetime, timedelta

    from contracts.models import DeviceState, DeviceTelemetry
    from contracts.topics import DeviceAddress, DeviceChannel, device_topic
    from gateway.timeseries.mapping import APPLIANCE, APPLIANCE_STATE

    address = DeviceAddress("campus", BUILDING, "laundry", "w1")
    key = "campus/" + BUILDING + "/laundry/w1"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    common = {"producer": "bridge:campus/hall", "site": "campus", "building": BUILDING}
    device = {**common, "room": "laundry", "device_id": "w1", "kind": "washer"}
    readings = [
        DeviceTelemetry(**device, ts=t0 + timedelta(seconds=10 * i), power_w=100.0 + i)
        for i in range(20)
    ]
    states = [
        DeviceState(
            **device,
            ts=t0 + timedelta(seconds=10 * i + 5),
            status="running" if i % 2 else "idle",
        )
        for i in range(10)
    ]
    replicas = _replicas(broker, tmp_path)
    pub = Publisher(broker.port, client_id="charts-pub")
    try:
        pub.publish_many(
            [(device_topic(address, DeviceChannel.TELEMETRY), r.to_bytes()) for r in readings]
            + [(device_topic(address, DeviceChannel.STATE), st.to_bytes()) for st in states]
        )

        def samples(gw: Gateway, measurement: str, field: str) -> int:
            since, until = t0 - timedelta(minutes=1), t0 + timedelta(hours=1)
            reader = gw.services.series_reader
            return len(reader.query(measurement, field, {}, since, until, 1000, series_key=key))

        for gw in replicas:
            wait_until(lambda gw=gw: samples(gw, APPLIANCE, "power_w") == 20, 20, "readings")
            wait_until(lambda gw=gw: samples(gw, APPLIANCE_STATE, "running") == 10, 20, "states")
        stored = [gw.services.counters.stored for gw in replicas]
    finally:
        pub.stop()
        for gw in replicas:
            gw.stop()
    # The states were stored once between them; the readings by each (they are not events).
    assert sum(stored) == 10 + 2 * 20, stored


def test_welfare_warnings_raise_for_a_student_inside_too_long_and_clear_when_they_leave(
    gateway: Gateway, publisher: Publisher
) -> None:
    from datetime import UTC, datetime, timedelta

    from gateway.alerts.types import AlertType

    long_ago = datetime.now(UTC) - timedelta(hours=80)
    publisher.publish(event_topic(), access_event(1, person="s-hermit", ts=long_ago).to_bytes())
    wait_until(lambda: _count(gateway, Presence) == 1, 10, "presence")
    now = datetime.now(UTC)
    gateway.services.alerts.apply(gateway.welfare_signals(now))
    with gateway.services.sessions() as s:
        alert = s.scalars(select(AlertRow).where(AlertRow.type == AlertType.WELFARE.value)).one()
    assert "s-hermit" in alert.originator and "no_exit" in alert.originator
    publisher.publish(event_topic(), access_event(2, person="s-hermit", direction="out").to_bytes())
    wait_until(lambda: _count(gateway, AccessRecord) == 2, 10, "the exit")
    gateway.services.alerts.apply(gateway.welfare_signals(datetime.now(UTC)))
    with gateway.services.sessions() as s:
        alert = s.scalars(select(AlertRow).where(AlertRow.type == AlertType.WELFARE.value)).one()
    assert alert.condition_active is False


def test_a_flood_of_malformed_payloads_never_stops_ingest(
    gateway: Gateway, publisher: Publisher
) -> None:
    """2,000 bad messages of many kinds interleaved with 200 good ones: all good ones stored."""
    good = [access_event(i) for i in range(1, 201)]
    template = json.loads(good[0].to_bytes())
    bad_kinds = [
        b"",
        b"null",
        b"\x00\x01\x02",
        b'{"schema": 99}',
        json.dumps({**template, "ts": "yesterday"}).encode(),
        json.dumps({**template, "distance": "NaN"}).encode(),
        json.dumps({**template, "faces_in_view": -1}).encode(),
        json.dumps({**template, "gate_id": "g2"}).encode(),  # another gate's identity
        b'{"a":' * 2000,
        json.dumps(template)[:-1].encode(),
    ]
    items = []
    for i in range(2000):
        items.append((event_topic(), bad_kinds[i % len(bad_kinds)]))
        if i % 10 == 0:
            items.append((event_topic(), good[i // 10].to_bytes()))
    publisher.publish_many(items)
    wait_until(lambda: gateway.services.counters.received >= 2200, 30, "every delivery")
    assert _count(gateway, AccessRecord) == 200
    assert _count(gateway, DeadLetter) == 2000
    assert gateway.services.counters.dead_letters == 2000
    assert gateway.ingest.connected()


@pytest.mark.timeout(60)
def test_a_console_on_one_replica_sees_alerts_raised_by_the_other(
    broker: Broker, tmp_path: Path
) -> None:
    """Replicas tell each other about alert changes, so no live console misses one: the
    console is on the replica that does not evaluate the rules."""
    from fastapi.testclient import TestClient

    from gateway.api import create_app
    from gateway.auth.users import create_user

    replicas = _replicas(broker, tmp_path)
    pub = Publisher(broker.port, client_id="replica-pub")
    try:
        wait_until(
            lambda: any(gw.evaluator and gw.evaluator.leading for gw in replicas),
            10,
            "an evaluator",
        )
        [console] = [gw for gw in replicas if gw.evaluator and not gw.evaluator.leading]
        with console.services.sessions.begin() as s:
            create_user(s, "guard-a", "guard-a-password", "guard", mode="development")
        with TestClient(create_app(console.services)) as client:
            token = client.post(
                "/api/auth/login", json={"username": "guard-a", "password": "guard-a-password"}
            ).json()["token"]
            with client.websocket_connect("/api/ws/alerts", headers=_bearer(token)) as ws:
                assert ws.receive_json()["type"] == "snapshot"
                gates = [f"x{i}" for i in range(6)]
                for gate in gates:
                    pub.publish(
                        event_topic(gate, GateChannel.DOOR),
                        door_event("forced_open", gate=gate).to_bytes(),
                    )
                seen: set[str] = set()
                while len(seen) < len(gates):
                    message = ws.receive_json()
                    if message["type"] == "alert":
                        seen.add(message["alert"]["originator"].rsplit("/", 1)[-1])
        evaluating = [bool(gw.evaluator and gw.evaluator.leading) for gw in replicas]
    finally:
        pub.stop()
        for gw in replicas:
            gw.stop()
    assert seen == set(gates)
    assert evaluating == [gw is not console for gw in replicas]


def test_two_states_of_a_new_appliance_in_one_batch_are_both_stored(gateway: Gateway) -> None:
    from contracts.models import DeviceState
    from contracts.topics import DeviceAddress, DeviceChannel, device_topic
    from gateway.db.schema import Device, DeviceStateRecord
    from gateway.ingest.batch import Inbound

    topic = device_topic(DeviceAddress("campus", BUILDING, "laundry", "w9"), DeviceChannel.STATE)
    states = [
        DeviceState(
            producer="bridge:campus/hall",
            site="campus",
            building=BUILDING,
            room="laundry",
            device_id="w9",
            kind="washer",
            status=status,  # type: ignore[arg-type]
        )
        for status in ("idle", "running")
    ]
    out = gateway.process([Inbound(topic, s.to_bytes()) for s in states])
    assert out.stored == 2 and out.dead_letters == 0
    with gateway.services.sessions() as s:
        device = s.get(Device, f"campus/{BUILDING}/laundry/w9")
        assert device is not None and device.status == "running"
    assert _count(gateway, DeviceStateRecord) == 2


def test_a_message_the_database_refuses_is_isolated_and_the_rest_stored(
    gateway: Gateway,
) -> None:
    """A poison message (here a door event id already stored after its dedup entry was pruned)
    becomes a dead letter with the database's reason; the batch around it is stored."""
    from sqlalchemy import text

    from gateway.ingest.batch import Inbound

    poison = door_event("opened")
    with gateway.services.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO door_events (event_id, ts, site, building, gate_id, kind) "
                "VALUES (:id, '2026-11-01 00:00:00.000000', 'campus', :b, :g, 'opened')"
            ),
            {"id": poison.event_id, "b": BUILDING, "g": GATE},
        )
    batch = [Inbound(event_topic(), access_event(i).to_bytes()) for i in range(1, 4)]
    batch.insert(2, Inbound(event_topic(channel=GateChannel.DOOR), poison.to_bytes()))
    out = gateway.process(batch)
    assert (out.stored, out.dead_letters) == (3, 1)
    assert _count(gateway, AccessRecord) == 3
    with gateway.services.sessions() as s:
        letter = s.scalars(select(DeadLetter)).one()
    assert "could not be stored" in letter.reason and "UNIQUE" in letter.reason
    assert verify_chain(gateway.services.engine).ok


def test_hourly_upkeep_forgets_old_event_ids_and_expired_tokens(gateway: Gateway) -> None:
    from datetime import UTC, datetime, timedelta

    from gateway.auth.login import login
    from gateway.auth.users import create_user
    from gateway.db.schema import ApiToken, SeenEvent

    with gateway.services.sessions.begin() as s:
        create_user(s, "upkeep-guard", "upkeep-guard-pw", "guard", mode="development")
    login(gateway.services, "upkeep-guard", "upkeep-guard-pw")
    now = datetime.now(UTC)
    with gateway.services.sessions.begin() as s:
        s.add(SeenEvent(event_id="old-event-000001", received_at=now - timedelta(days=30)))
        s.add(SeenEvent(event_id="new-event-000001", received_at=now))
    gateway._hourly(now + timedelta(days=2))  # the login token (12 h) has expired by then
    with gateway.services.sessions() as s:
        assert set(s.scalars(select(SeenEvent.event_id))) == {"new-event-000001"}
        assert s.scalars(select(ApiToken)).all() == []


def test_hourly_upkeep_forgets_idle_login_throttles_and_auth_events_past_their_retention(
    tmp_path: Path,
) -> None:
    """A failed-login count (an address, a user name tried) goes an hour after its last failure
    even when no further failure prunes it; auth_events go after api.auth_events_retention_days."""
    from datetime import timedelta

    from gateway.auth.login import LoginError, login
    from gateway.auth.users import create_user
    from gateway.db import migrate
    from gateway.db.schema import AuthEvent, LoginThrottle
    from tests.gatewaykit import FakeClock

    raw = gateway_config(tmp_path, 1883)
    raw["api"] = {**raw["api"], "login_max_failures": 1, "auth_events_retention_days": 30}
    clock = FakeClock()
    gw = build_gateway(GatewayConfig.model_validate(raw), clock=clock)  # not started: no broker
    services = gw.services
    migrate(services.engine)

    def fail_twice(username: str, address: str) -> None:
        """The free failure, then one that starts the three waits (each audited)."""
        for _ in range(2):
            with pytest.raises(LoginError):
                login(services, username, "wrong-password-1", address)

    try:
        with services.sessions.begin() as s:
            create_user(s, "upkeep-admin", "upkeep-admin-pw", "admin", mode="development")
        first = clock()
        fail_twice("upkeep-admin", "203.0.113.7")
        later = clock.advance(30 * 60)
        fail_twice("nobody-here", "198.51.100.4")
        with services.sessions() as s:
            assert len(s.scalars(select(LoginThrottle)).all()) == 6
            assert sorted(s.scalars(select(AuthEvent.at))) == [first] * 3 + [later] * 3

        gw._hourly(first + timedelta(minutes=61))
        with services.sessions() as s:
            kept = s.scalars(select(LoginThrottle)).all()
            assert {(t.username, t.address) for t in kept} == {
                ("", "198.51.100.4"),
                ("nobody-here", "198.51.100.4"),
                ("nobody-here", ""),
            }
            assert len(s.scalars(select(AuthEvent)).all()) == 6  # well inside the 30 days

        gw._hourly(first + timedelta(days=30, minutes=15))
        with services.sessions() as s:
            assert s.scalars(select(LoginThrottle)).all() == []
            assert sorted(s.scalars(select(AuthEvent.at))) == [later] * 3
    finally:
        services.engine.dispose()


def test_a_batch_not_stored_when_ingest_stops_is_not_acknowledged(
    broker: Broker, tmp_path: Path
) -> None:
    """Stopping during a database outage leaves the batch with the broker, which redelivers it."""
    from gateway.config import GatewayMqttSettings
    from gateway.ingest.batch import BatchOutcome, Inbound
    from gateway.ingest.mqtt import MqttIngest

    settings = GatewayMqttSettings(port=broker.port)
    client_id = f"gw-outage-{tmp_path.name[-10:]}"
    attempts: list[str] = []

    def database_down(batch: object) -> BatchOutcome:
        attempts.append("tried")
        raise RuntimeError("database is down")

    first = MqttIngest(settings, "campus", client_id, database_down)
    first.start()
    assert first.wait_ready(10)
    pub = Publisher(broker.port, client_id="outage-pub")
    event = access_event(1)
    pub.publish(event_topic(), event.to_bytes())
    wait_until(lambda: bool(attempts), 10, "a storing attempt")
    first.stop()

    stored: list[Inbound] = []

    def database_up(batch: list[Inbound]) -> BatchOutcome:
        stored.extend(batch)
        return BatchOutcome(stored=len(batch))

    second = MqttIngest(settings, "campus", client_id, database_up)
    second.start()
    try:
        wait_until(lambda: bool(stored), 10, "the redelivered event")
    finally:
        second.stop()
        pub.stop()
    assert event.event_id.encode() in stored[0].payload
