"""Read APIs, people, gates and commands over real SQLite, the real series store and mosquitto."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from prometheus_client.parser import text_string_to_metric_families
from pydantic import TypeAdapter

from contracts.models import Command, CommandResult, DeviceTelemetry
from contracts.registry import parse_message
from contracts.topics import parse_topic
from gateway.alerts.types import AlertType, Severity
from gateway.auth.roles import Role
from gateway.config import GatewayMqttSettings
from gateway.db.schema import Person
from gateway.ingest.batch import BatchOutcome, Inbound
from gateway.ingest.mqtt import MqttIngest
from gateway.services import Services
from gateway.timeseries.mapping import points_for
from tests.broker import Broker, Collector
from tests.gatewaykit import (
    SITE,
    add_access,
    add_dead_letter,
    add_device,
    add_person,
    add_presence,
    clock_of,
    gateway_client,
    login,
    signal,
)
from tests.keys import TEST_SIGNER


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    with gateway_client(tmp_path) as pair:
        yield pair


# --- access log ----------------------------------------------------------------------------


def test_access_log_search_filters_newest_first_and_pages_by_cursor(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    guard = login(client, Role.GUARD)
    start = clock_of(services).now - timedelta(hours=1)
    for i in range(25):
        add_access(
            services,
            ts=start + timedelta(minutes=i),
            person_id="s1" if i % 2 == 0 else "s2",
            decision="granted" if i % 5 else "denied",
            method="face" if i % 3 else "card",
            gate_id="east" if i < 20 else "west",
        )
    page = client.get("/api/access?limit=10", headers=guard).json()
    stamps = [item["ts"] for item in page["items"]]
    assert len(stamps) == 10 and stamps == sorted(stamps, reverse=True)
    seen = list(stamps)
    cursor = page["next_cursor"]
    while cursor:
        page = client.get(f"/api/access?limit=10&cursor={cursor}", headers=guard).json()
        seen += [item["ts"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == 25 and len(set(seen)) == 25 and seen == sorted(seen, reverse=True)

    def count(query: str) -> int:
        response = client.get(f"/api/access?limit=1000&{query}", headers=guard)
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    assert count("person=s1") == 13
    assert count("decision=denied") == 5
    assert count("method=card") == 9
    assert count("gate=west&building=b1") == 5
    since = (start + timedelta(minutes=10)).isoformat()
    until = (start + timedelta(minutes=15)).isoformat()
    assert count(f"since={since.replace('+', '%2B')}&until={until.replace('+', '%2B')}") == 5
    assert count("offset=20") == 5
    assert client.get("/api/access?limit=1001", headers=guard).status_code == 422
    assert client.get("/api/access?cursor=garbage", headers=guard).status_code == 422
    assert client.get("/api/access?decision=maybe", headers=guard).status_code == 422


def test_counsellors_see_the_access_log_of_their_students_only(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    add_person(services, "s1", counsellor="counsellor-user")
    add_person(services, "s2", counsellor="someone-else")
    now = clock_of(services).now
    add_access(services, ts=now, person_id="s1")
    add_access(services, ts=now, person_id="s2")
    add_access(services, ts=now, person_id=None, decision="denied", reason="unknown_face")
    counsellor = login(client, Role.COUNSELLOR)
    items = client.get("/api/access", headers=counsellor).json()["items"]
    assert [i["person_id"] for i in items] == ["s1"]


# --- occupancy and fire alarm --------------------------------------------------------------------


def test_occupancy_counts_and_roll_call(app: tuple[TestClient, Services]) -> None:
    client, services = app
    guard = login(client, Role.GUARD)
    now = clock_of(services).now
    add_person(services, "s1", name="Li Wei")
    add_presence(services, "s1", "b1", since=now - timedelta(hours=2))
    add_presence(services, "s2", "b1", since=now - timedelta(hours=1), irregular=True)
    add_presence(services, "s3", "b1", inside=False, since=now - timedelta(hours=3))
    add_presence(services, "s4", "b3", since=now)  # a building not in the config
    counts = client.get("/api/occupancy", headers=guard).json()
    assert counts == [
        {"building": "b1", "inside": 2},
        {"building": "b2", "inside": 0},
        {"building": "b3", "inside": 1},
    ]
    roll = client.get("/api/occupancy/b1/roll-call", headers=guard).json()
    assert roll["count"] == 2
    assert [(p["person_id"], p["name"], p["irregular"]) for p in roll["people"]] == [
        ("s1", "Li Wei", False),
        ("s2", "", True),
    ]
    assert roll["people"][0]["hours_inside"] == pytest.approx(2.0)
    assert client.get("/api/occupancy/b2/roll-call", headers=guard).json()["count"] == 0
    assert client.get("/api/occupancy/nowhere/roll-call", headers=guard).status_code == 404


def test_commands_without_a_broker_link_answer_503(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    guard = login(client, Role.GUARD)
    response = client.post(
        f"/api/gates/{SITE}/b1/east/command", headers=guard, json={"command": "unlock"}
    )
    assert response.status_code == 503 and "broker" in response.json()["detail"]
    fire = client.post("/api/buildings/b1/fire-alarm", headers=guard)
    assert fire.status_code == 503


class FakeGate:
    """Answers every command on the site's gates like the edge daemon does."""

    def __init__(self, port: int) -> None:
        self.commands: list[tuple[str, Command]] = []
        self._ready = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="fake-gates", protocol=MQTTProtocolVersion.MQTTv5
        )
        self._client.on_connect = lambda c, *a: c.subscribe(f"dorm/{SITE}/+/gate/+/command", 1)
        self._client.on_subscribe = lambda *a: self._ready.set()
        self._client.on_message = self._on_message
        self._port = port

    def start(self) -> FakeGate:
        self._client.connect("127.0.0.1", self._port)
        self._client.loop_start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_message(self, client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        command = Command.model_validate_json(msg.payload)
        self.commands.append((msg.topic, command))
        parsed = parse_topic(msg.topic)
        result = CommandResult(
            producer=f"gate:{parsed.site}/{parsed.building}/{parsed.gate_id}",
            correlation_id=command.correlation_id,
            ok=True,
            detail=f"{command.command} for {command.duration_s or 0:.0f}s",
        )
        client.publish(msg.topic + "/result", result.to_bytes(), qos=1)


def _results_to(services: Services) -> object:
    """An ingest callback that hands command results to the command service (as the gateway)."""

    def process(batch: Sequence[Inbound]) -> BatchOutcome:
        for inbound in batch:
            parsed = parse_topic(inbound.topic)
            if parsed.channel == "command/result" and services.commands is not None:
                result = parse_message(inbound.topic, inbound.payload)
                assert isinstance(result, CommandResult)
                key = f"{parsed.site}/{parsed.building}/{parsed.gate_id}"
                services.commands.on_result(key, result)
        return BatchOutcome()

    return process


@pytest.fixture
def linked(tmp_path: Path, broker: Broker) -> Iterator[tuple[TestClient, Services, Collector]]:
    """An app whose commands go through the gateway's real MQTT link to a real mosquitto."""
    ingest: MqttIngest | None = None
    with gateway_client(tmp_path) as (client, services):
        ingest = MqttIngest(
            GatewayMqttSettings(port=broker.port),
            SITE,
            "gateway-test",
            _results_to(services),  # type: ignore[arg-type]
        )
        ingest.start()
        assert ingest.wait_ready(10)
        services.publisher = ingest
        from gateway.commands import CommandService

        services.commands = CommandService(services.sessions, services.clock, ingest, TEST_SIGNER)
        collector = Collector(broker.port, f"dorm/{SITE}/+/gate/+/command", client_id="rec").start()
        try:
            yield client, services, collector
        finally:
            collector.stop()
            ingest.stop()


@pytest.mark.broker
def test_gate_command_is_published_qos1_recorded_and_answered(
    linked: tuple[TestClient, Services, Collector], broker: Broker
) -> None:
    client, _, collector = linked
    gate = FakeGate(broker.port).start()
    try:
        guard = login(client, Role.GUARD)
        response = client.post(
            f"/api/gates/{SITE}/b1/east/command",
            headers=guard,
            json={"command": "unlock", "duration_s": 5, "reason": "visitor at the door"},
        )
        assert response.status_code == 202, response.text
        sent = response.json()
        assert sent["issued_by"] == "guard-user" and sent["ok"] is None
        messages = collector.wait_for(lambda m: len(m) >= 1)
        topic, payload, retained = messages[0]
        assert topic == f"dorm/{SITE}/b1/gate/east/command" and not retained
        command = Command.model_validate_json(payload)
        assert command.correlation_id == sent["correlation_id"]
        assert (command.command, command.duration_s) == ("unlock", 5)
        # The fake gate answers; the ingest hands the result to the command service.
        for _ in range(100):
            listed = client.get(f"/api/gates/{SITE}/b1/east/commands", headers=guard).json()
            if listed and listed[0]["ok"] is not None:
                break
            time.sleep(0.05)
        assert listed[0]["ok"] is True and listed[0]["detail"] == "unlock for 5s"
        unknown = client.post(
            f"/api/gates/{SITE}/zz/none/command", headers=guard, json={"command": "ping"}
        )
        assert unknown.status_code == 404
        bad = client.post(
            f"/api/gates/{SITE}/b1/east/command", headers=guard, json={"command": "explode"}
        )
        assert bad.status_code == 422
    finally:
        gate.stop()


@pytest.mark.broker
def test_fire_alarm_holds_every_gate_of_the_building_open_and_returns_the_roll_call(
    linked: tuple[TestClient, Services, Collector],
) -> None:
    client, services, collector = linked
    add_presence(services, "s1", "b1", since=clock_of(services).now - timedelta(hours=1))
    guard = login(client, Role.GUARD)
    response = client.post("/api/buildings/b1/fire-alarm", headers=guard)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(g["gate_key"], g["sent"]) for g in body["gates"]] == [
        (f"{SITE}/b1/east", True),
        (f"{SITE}/b1/west", True),
    ]
    assert [p["person_id"] for p in body["roll_call"]["people"]] == ["s1"]
    messages = collector.wait_for(lambda m: len(m) >= 2)
    commands = {t: Command.model_validate_json(p) for t, p, _ in messages}
    assert set(commands) == {
        f"dorm/{SITE}/b1/gate/east/command",
        f"dorm/{SITE}/b1/gate/west/command",
    }
    for command in commands.values():
        assert command.command == "hold_open" and command.reason == "fire alarm"
        assert command.duration_s is not None and command.duration_s >= 3600
    assert client.post("/api/buildings/zz/fire-alarm", headers=guard).status_code == 404


# --- devices ---------------------------------------------------------------------------------


def test_device_board_filters_and_shows_running_faults_and_offline(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    facilities = login(client, Role.FACILITIES)
    add_device(services, "r101", "w1", status="running", state={"remaining_s": 1200.0})
    add_device(services, "r101", "w2", status="idle")
    add_device(services, "r101", "d1", kind="dryer", status="idle", faults=["over_temperature"])
    add_device(services, "r201", "h1", kind="hair_dryer", status="standby", online=False)
    add_device(services, "r301", "w9", building="b2", status="finished")
    board = client.get("/api/devices", headers=facilities).json()
    assert {d["device_id"]: d["board_status"] for d in board} == {
        "w1": "running",
        "w2": "free",
        "d1": "fault",
        "h1": "offline",
        "w9": "finished",
    }
    running = next(d for d in board if d["device_id"] == "w1")
    assert running["remaining_s"] == 1200.0

    def ids(query: str) -> list[str]:
        response = client.get(f"/api/devices?{query}", headers=facilities)
        assert response.status_code == 200
        return [d["device_id"] for d in response.json()]

    assert ids("building=b2") == ["w9"]
    assert ids("room=r101&kind=washer") == ["w1", "w2"]
    assert ids("status=fault") == ["d1"]
    assert ids("status=offline") == ["h1"]
    assert ids("status=idle") == ["d1", "w2"]


def test_the_board_shows_each_change_of_a_row_made_after_it_was_cached(
    app: tuple[TestClient, Services],
) -> None:
    """Rows are served from the encoding cache only while their database row is unchanged, so
    a change written by anyone (another replica's ingest) shows on the next request."""
    from gateway.api.board import BoardCache
    from gateway.api.routes.devices import DeviceOut
    from gateway.db.schema import Device

    client, services = app
    facilities = login(client, Role.FACILITIES)
    for n in range(30):
        add_device(services, f"r{n % 3}", f"w{n}", status="idle", state={"power_w": 1.0})
    warm = client.get("/api/devices", headers=facilities).json()
    assert {d["board_status"] for d in warm} == {"free"} and len(warm) == 30

    with services.sessions.begin() as session:
        w3 = session.get(Device, f"{SITE}/b1/r0/w3")
        assert w3 is not None
        w3.status, w3.state = "running", {"power_w": 480.0, "remaining_s": 900.0}
        w7 = session.get(Device, f"{SITE}/b1/r1/w7")
        assert w7 is not None
        w7.faults = ["leak"]
        w8 = session.get(Device, f"{SITE}/b1/r2/w8")
        assert w8 is not None
        w8.online = False
    response = client.get("/api/devices", headers=facilities)
    board = {d["device_id"]: d for d in response.json()}
    assert (board["w3"]["board_status"], board["w3"]["power_w"]) == ("running", 480.0)
    assert board["w3"]["remaining_s"] == 900.0
    assert (board["w7"]["board_status"], board["w7"]["faults"]) == ("fault", ["leak"])
    assert board["w8"]["board_status"] == "offline"
    assert [
        d["device_id"] for d in client.get("/api/devices?status=running", headers=facilities).json()
    ] == ["w3"]
    # Byte for byte what a cold cache (every row encoded afresh) answers.
    with services.sessions() as session:
        cold = BoardCache(TypeAdapter(DeviceOut)).board(
            session, lambda q: q.order_by(Device.building, Device.room, Device.device_id)
        )
    assert response.content == cold


def test_device_detail_history_and_series_from_the_series_store(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    facilities = login(client, Role.FACILITIES)
    now = clock_of(services).now
    key = add_device(
        services,
        "r101",
        "w1",
        status="running",
        history=[(now - timedelta(minutes=40), "idle"), (now - timedelta(minutes=30), "running")],
    )
    add_device(services, "r101", "w2")  # same room and kind: must not mix into w1's series
    for minutes, (device, watts) in enumerate([("w1", 500.0), ("w2", 5.0), ("w1", 1900.0)]):
        reading = DeviceTelemetry(
            producer="bridge:campus/br1",
            ts=now - timedelta(minutes=10 - minutes),
            site=SITE,
            building="b1",
            room="r101",
            device_id=device,
            kind="washer",
            power_w=watts,
        )
        services.series_writer.write(points_for(reading))
    assert services.series_writer.flush(5)

    detail = client.get(f"/api/devices/{key}", headers=facilities)
    assert detail.status_code == 200, detail.text
    assert [h["status"] for h in detail.json()["history"]] == ["running", "idle"]
    series = client.get(f"/api/devices/{key}/series?field=power_w", headers=facilities)
    assert series.status_code == 200, series.text
    assert [s["value"] for s in series.json()["samples"]] == [500.0, 1900.0]
    since = (now - timedelta(minutes=9)).isoformat().replace("+00:00", "Z")
    later = client.get(f"/api/devices/{key}/series?since={since}", headers=facilities).json()
    assert [s["value"] for s in later["samples"]] == [1900.0]
    assert client.get(f"/api/devices/{SITE}/b1/r1/none", headers=facilities).status_code == 404
    bad = client.get(f"/api/devices/{key}/series?field=drop%20table", headers=facilities)
    assert bad.status_code == 422


# --- people ----------------------------------------------------------------------------------


def test_people_create_read_patch_without_face_data_or_secrets(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    admin = login(client, Role.ADMIN)
    guard = login(client, Role.GUARD)
    created = client.post(
        "/api/people",
        headers=admin,
        json={
            "person_id": "s100",
            "name": "Wang Fang",
            "buildings": ["b1"],
            "cards": ["04:a1:b2:c3"],
            "pin": "4321",
            "windows": [{"days": [0, 1, 2, 3, 4], "start": "06:00", "end": "23:30"}],
            "valid_until": "2026-06-30T18:00:00+08:00",
        },
    )
    assert created.status_code == 201, created.text
    person = created.json()
    assert person["cards"] == ["04A1B2C3"] and person["has_pin"] is True
    assert person["valid_until"].startswith("2026-06-30T10:00:00")
    seen_by_guard = client.get("/api/people/s100", headers=guard).json()
    assert seen_by_guard["cards"] == ["****B2C3"]
    for secret in ("4321", "pbkdf2", "template", "encoding", "photo"):
        assert secret not in json.dumps(seen_by_guard).lower()
    with services.sessions() as session:
        row = session.get(Person, "s100")
        assert row is not None and row.pin_hash is not None and "4321" not in row.pin_hash

    patched = client.patch(
        "/api/people/s100", headers=admin, json={"status": "suspended", "pin": None}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "suspended" and patched.json()["has_pin"] is False
    assert patched.json()["name"] == "Wang Fang"
    listed = client.get("/api/people?status=suspended&building=b1", headers=guard).json()
    assert [p["person_id"] for p in listed] == ["s100"]
    assert client.get("/api/people?q=fang", headers=guard).json()[0]["person_id"] == "s100"


def test_people_writes_are_validated(app: tuple[TestClient, Services]) -> None:
    client, services = app
    admin = login(client, Role.ADMIN)
    add_person(services, "s1", cards=["04A1B2C3"])
    cases = [
        {"person_id": "bad id"},
        {"person_id": "s2", "pin": "12"},
        {"person_id": "s2", "cards": ["zz-not-hex"]},
        {"person_id": "s2", "windows": [{"days": [7], "start": "06:00", "end": "07:00"}]},
        {"person_id": "s2", "windows": [{"days": [1], "start": "25:00", "end": "07:00"}]},
        {"person_id": "s2", "kind": "alien"},
        {"person_id": "s2", "unknown_field": 1},
        {"person_id": "s2", "valid_from": "2025-01-01T00:00:00"},
        {
            "person_id": "s2",
            "valid_from": "2025-02-01T00:00:00Z",
            "valid_until": "2025-01-01T00:00:00Z",
        },
    ]
    for body in cases:
        response = client.post("/api/people", headers=admin, json=body)
        assert response.status_code == 422, (body, response.text)
    clash = client.post(
        "/api/people", headers=admin, json={"person_id": "s2", "cards": ["04a1b2c3"]}
    )
    assert clash.status_code == 409 and "already belongs to 's1'" in clash.json()["detail"]
    assert client.post("/api/people", headers=admin, json={"person_id": "s1"}).status_code == 409
    assert client.patch("/api/people/nobody", headers=admin, json={}).status_code == 404
    assert client.patch("/api/people/s1", headers=admin, json={"name": None}).status_code == 422


# --- gates, dead letters, health, metrics --------------------------------------------------------


def test_gates_list_online_state_heartbeat_and_gallery_version(
    app: tuple[TestClient, Services],
) -> None:
    from gateway.db.schema import Gate

    client, services = app
    now = clock_of(services).now
    with services.sessions.begin() as session:
        gate = session.get(Gate, f"{SITE}/b1/east")
        assert gate is not None
        gate.online = True
        gate.last_heartbeat_at = now
        gate.gallery_version = 7
        gate.heartbeat = {"fps": 9.5, "outbox_depth": 0, "face_path": "ok", "producer": "x"}
    gates = client.get("/api/gates", headers=login(client, Role.GUARD)).json()
    assert [g["gate_key"] for g in gates] == [
        f"{SITE}/b1/east",
        f"{SITE}/b1/west",
        f"{SITE}/b2/main",
    ]
    east = gates[0]
    assert east["online"] is True and east["gallery_version"] == 7
    assert east["heartbeat"] == {"fps": 9.5, "outbox_depth": 0, "face_path": "ok"}
    assert gates[1]["online"] is None


def test_dead_letters_are_listed_with_an_escaped_preview(app: tuple[TestClient, Services]) -> None:
    client, services = app
    add_dead_letter(
        services,
        f"dorm/{SITE}/b1/gate/east/event",
        b'{"x": "<script>alert(1)</script>"}\x00\xff' + b"a" * 1000,
        "payload is not valid JSON",
    )
    add_dead_letter(services, f"dorm/{SITE}/b2/gate/main/door", b"{}", "missing fields")
    auditor = login(client, Role.AUDITOR)
    letters = client.get("/api/dead-letters", headers=auditor).json()
    assert len(letters) == 2
    first = next(d for d in letters if d["topic"].endswith("/event"))
    assert first["payload_size"] == len(b'{"x": "<script>alert(1)</script>"}\x00\xff') + 1000
    assert first["truncated"] is True
    preview = first["payload_preview"]
    assert "<" not in preview and ">" not in preview and "\x00" not in preview
    assert "\\u003cscript\\u003e" in preview and "\\u0000" in preview and "\\xff" in preview
    filtered = client.get(f"/api/dead-letters?topic=dorm/{SITE}/b2", headers=auditor).json()
    assert [d["reason"] for d in filtered] == ["missing fields"]


def test_detailed_health_for_operators(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    body = client.get("/api/health", headers=login(client, Role.AUDITOR)).json()
    assert body["database"] == {"ok": True, "schema_current": True, "error": ""}
    assert body["ingest"]["connected"] is False
    assert body["status"] == "degraded"  # no broker link in this test
    assert body["series"]["healthy"] is True
    assert client.get("/healthz").json() == {"status": "degraded"}


def test_metrics_parse_as_prometheus_text(app: tuple[TestClient, Services]) -> None:
    client, services = app
    services.counters.add("received", 10)
    services.counters.add("stored", 8)
    services.counters.add("duplicates", 1)
    services.counters.add("dead_letters", 1)
    services.alerts.apply([signal()])
    services.alerts.apply(
        [signal(AlertType.APPLIANCE_FAULT, f"device:{SITE}/b1/r1/w1", severity=Severity.MAJOR)]
    )
    services.alerts.acknowledge(2, "guard-user")
    response = client.get("/metrics", headers=login(client, Role.AUDITOR))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("dormguard_ingest_received_total", ())] == 10
    assert samples[("dormguard_ingest_stored_total", ())] == 8
    assert samples[("dormguard_ingest_duplicates_total", ())] == 1
    assert samples[("dormguard_ingest_dead_letters_total", ())] == 1
    assert samples[("dormguard_alerts_open", (("severity", "critical"),))] == 1
    assert samples[("dormguard_alerts_open", (("severity", "major"),))] == 1
    assert samples[("dormguard_alerts_open", (("severity", "info"),))] == 0
    assert samples[("dormguard_alerts_unacknowledged", ())] == 1
    assert samples[("dormguard_series_backlog", ())] == 0
    assert samples[("dormguard_ingest_connected", ())] == 0


def test_two_apps_in_one_process_keep_their_own_metrics(tmp_path: Path) -> None:
    with (
        gateway_client(tmp_path / "a") as (client_a, services_a),
        gateway_client(tmp_path / "b") as (client_b, _),
    ):
        services_a.counters.add("received", 5)
        text_a = client_a.get("/metrics", headers=login(client_a, Role.ADMIN)).text
        text_b = client_b.get("/metrics", headers=login(client_b, Role.ADMIN)).text
        assert "dormguard_ingest_received_total 5.0" in text_a
        assert "dormguard_ingest_received_total 0.0" in text_b


def test_prometheus_scrapes_metrics_with_the_site_scrape_token_and_nothing_else(
    tmp_path: Path,
) -> None:
    """api.metrics_token opens /metrics (unattended scraping) but no other route."""
    scrape = {"Authorization": "Bearer scrape-token-0123456789"}
    with gateway_client(tmp_path) as (client, services):
        assert client.get("/metrics", headers=scrape).status_code == 401  # not configured yet
        services.metrics_token = "scrape-token-0123456789"
        response = client.get("/metrics", headers=scrape)
        assert response.status_code == 200
        assert "dormguard_ingest_received" in response.text
        assert client.get("/api/alerts", headers=scrape).status_code == 401
        wrong = {"Authorization": "Bearer scrape-token-wrong"}
        assert client.get("/metrics", headers=wrong).status_code == 401
