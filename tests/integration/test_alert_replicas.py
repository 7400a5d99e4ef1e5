"""Three real gateway replicas on a real PostgreSQL and mosquitto: alerts stay exact when the
replica that evaluates the rules is killed with SIGKILL mid-stream.

Each alert the stream calls for is raised once and cleared once, windows that straddle the kill
keep counting, no event is lost or stored twice (the killed replica's share of the stream waits
in its broker session until it is back, docs/operations.md), event-gap detection is on and
reports nothing, and a console connected to each surviving replica sees the alerts raised after
the kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session
from websockets.sync.client import connect

from contracts.models import Availability
from contracts.topics import GateAddress, GateChannel, gate_topic
from edge.localbroker import free_port
from gateway.auth.users import create_user
from gateway.db.schema import AccessRecord, AlertHistory, AlertRow, RuleCursor
from tests.broker import Broker
from tests.gatewaykit import PASSWORD
from tests.gatewayproc import (
    BUILDING,
    SITE,
    Publisher,
    access_event,
    event_topic,
    gateway_config,
    spawn_gateway,
    wait_until,
    write_config,
)
from tests.postgres import Postgres

pytestmark = pytest.mark.slow

NAMES = ("a", "b", "c")
STREAM = 300  # granted events on gate g3 while the evaluator is killed


class Replica:
    """One `dormguard gateway` process of the group, restartable with the same identity."""

    def __init__(self, name: str, config: Path, log: Path, api_port: int, client_id: str) -> None:
        self.name, self.config, self.log = name, config, log
        self.api_port, self.client_id = api_port, client_id
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn_gateway(self.config, self.log)

    def ready(self) -> bool:
        return "API on" in self.log.read_text(errors="replace") if self.log.exists() else False

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Console(threading.Thread):
    """A guard's live-alert WebSocket on one replica; keeps every alert change it is sent."""

    def __init__(self, port: int, token: str) -> None:
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{port}/api/ws/alerts"
        self.token = token
        self.changes: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        with connect(self.url) as ws:
            ws.send(json.dumps({"type": "auth", "token": self.token}))
            while not self.done.is_set():
                try:
                    message = json.loads(ws.recv(timeout=0.2))
                except TimeoutError:
                    continue
                if message["type"] == "snapshot":
                    self.ready.set()
                elif message["type"] == "alert":
                    self.changes.append(message["alert"])

    def saw(self, alert_type: str, state: str, count: int | None = None) -> bool:
        return any(
            a["type"] == alert_type
            and a["state"] == state
            and (count is None or a["count"] == count)
            for a in list(self.changes)
        )


@pytest.fixture
def database(postgres: Postgres) -> Iterator[str]:
    """A fresh database on the module's PostgreSQL server."""
    name = f"replicas_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def _replicas(tmp_path: Path, broker: Broker, url: str) -> list[Replica]:
    group = f"gw{uuid.uuid4().hex[:8]}"  # a group of its own (see docs/operations.md)
    replicas = []
    for name in NAMES:
        folder = tmp_path / name
        folder.mkdir()
        port = free_port()
        raw = gateway_config(folder, broker.port, api_port=port)
        raw["database"] = {"url": url}
        raw["mqtt"] = {**raw["mqtt"], "client_id": f"gw-{name}-{group}", "shared_group": group}
        raw["gates"] = [
            {"building": BUILDING, "id": gate, "direction": "in"} for gate in ("g1", "g2", "g3")
        ]
        raw["rules"] = {"offline_grace_s": 2}
        config = write_config(folder / "gateway.yaml", raw)
        replicas.append(
            Replica(name, config, folder / "gateway.log", port, raw["mqtt"]["client_id"])
        )
    return replicas


def _scalar(engine: Engine, query: Any) -> Any:
    with engine.connect() as c:
        return c.execute(query).scalar()


def _alerts(engine: Engine, alert_type: str) -> list[AlertRow]:
    with Session(engine) as session:
        return list(session.scalars(select(AlertRow).where(AlertRow.type == alert_type)))


def _changes(engine: Engine, alert_id: int) -> list[str]:
    with engine.connect() as c:
        query = select(AlertHistory.action).where(AlertHistory.alert_id == alert_id)
        return [str(a) for a in c.execute(query.order_by(AlertHistory.id)).scalars()]


def _availability(pub: Publisher, gate: str, state: str) -> None:
    topic = gate_topic(GateAddress(SITE, BUILDING, gate), GateChannel.AVAILABILITY)
    body = Availability(producer=f"gate-{gate}", state=state)  # type: ignore[arg-type]
    pub.publish(topic, body.to_bytes(), retain=True)


def _login(port: int, user: str = "guard-1") -> str:
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/auth/login",
        json={"username": user, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def test_killing_the_evaluating_replica_loses_and_duplicates_no_alert(
    tmp_path: Path, broker: Broker, database: str
) -> None:
    replicas = _replicas(tmp_path, broker, database)
    engine = create_engine(database)
    pub = Publisher(broker.port, client_id=f"replica-load-{uuid.uuid4().hex[:6]}")
    consoles: list[Console] = []
    try:
        replicas[0].start()  # the first one migrates the database
        wait_until(replicas[0].ready, 60, "the first replica")
        for r in replicas[1:]:
            r.start()
        wait_until(lambda: all(r.ready() for r in replicas), 60, "all three replicas")
        with Session(engine) as session, session.begin():
            create_user(session, "guard-1", PASSWORD, "guard", mode="development")
            create_user(session, "auditor-1", PASSWORD, "auditor", mode="development")

        def holder() -> str | None:
            return _scalar(engine, select(RuleCursor.holder))  # type: ignore[no-any-return]

        wait_until(lambda: holder() is not None, 20, "an elected evaluator")
        leader = next(r for r in replicas if r.client_id == holder())

        # Before the kill: three unknown faces at g1 raise; g2 goes offline.
        for i in range(1, 4):
            ev = access_event(i, decision="denied", gate="g1")
            pub.publish(event_topic("g1"), ev.to_bytes())
        _availability(pub, "g2", "offline")
        wait_until(lambda: len(_alerts(engine, "unknown_face")) == 1, 20, "unknown faces")
        wait_until(lambda: len(_alerts(engine, "edge_offline")) == 1, 20, "g2 offline")

        survivors = [r for r in replicas if r is not leader]
        for r in survivors:
            console = Console(r.api_port, _login(r.api_port))
            console.start()
            consoles.append(console)
        for console in consoles:
            assert console.ready.wait(10), "the console got no snapshot"

        # Mid-stream: SIGKILL the evaluator while gate g3 streams.
        stream = [access_event(i, gate="g3") for i in range(1, STREAM + 1)]
        sender = threading.Thread(
            target=pub.publish_many, args=([(event_topic("g3"), e.to_bytes()) for e in stream],)
        )
        sender.start()
        time.sleep(0.5)
        leader.kill()
        sender.join(60)
        wait_until(lambda: holder() not in (None, leader.client_id), 30, "a new evaluator")

        # After the kill: the window straddling it keeps counting; g2 comes back.
        for i in range(4, 6):
            ev = access_event(i, decision="denied", gate="g1")
            pub.publish(event_topic("g1"), ev.to_bytes())
        _availability(pub, "g2", "online")
        # The killed replica comes back (as its supervisor would) and its share arrives: the
        # broker kept dealing it a third of the stream meanwhile.
        leader.start()
        total = 5 + STREAM
        wait_until(
            lambda: _scalar(engine, select(func.count()).select_from(AccessRecord)) == total,
            60,
            f"all {total} events stored",
        )
        wait_until(
            lambda: [a.count for a in _alerts(engine, "unknown_face")] == [3], 30, "the repeats"
        )
        wait_until(
            lambda: [a.state for a in _alerts(engine, "edge_offline")] == ["cleared"], 30, "clear"
        )

        time.sleep(3.0)  # let the evaluator catch up and anything wrong show
        for console in consoles:
            wait_until(lambda c=console: c.saw("unknown_face", "active", 3), 10, "repeat")
            wait_until(lambda c=console: c.saw("edge_offline", "cleared"), 10, "clear")

        ids = _scalar(engine, select(func.count(func.distinct(AccessRecord.event_id))))
        assert ids == total
        [faces] = _alerts(engine, "unknown_face")
        assert (faces.count, faces.state) == (3, "active")
        [offline] = _alerts(engine, "edge_offline")
        assert offline.originator.endswith("/g2")
        assert _changes(engine, offline.id) == ["raised", "auto_cleared"]
        assert _alerts(engine, "event_gap") == []
        kinds = _scalar(engine, select(func.count(func.distinct(AlertRow.type))))
        assert kinds == 2, "no other alert was raised"

        # Each replica's health names the evaluator; only that one says it evaluates.
        rules = []
        for r in replicas:
            token = _login(r.api_port, "auditor-1")
            health = httpx.get(
                f"http://127.0.0.1:{r.api_port}/api/health",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert health.status_code == 200, health.text
            rules.append(health.json()["rules"])
        assert {h["evaluator"] for h in rules} == {holder()} != {leader.client_id}
        assert [h["evaluating"] for h in rules] == [r.client_id == holder() for r in replicas]
        assert all(h["evaluation"] == "elected" and h["backlog"] < 50 for h in rules)
    finally:
        for console in consoles:
            console.done.set()
        for console in consoles:
            console.join(5)
        pub.stop()
        for r in replicas:
            r.stop()
        engine.dispose()
