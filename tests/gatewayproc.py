"""Builders for gateway ingest tests: config files, event publishers, a real gateway process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from contracts.models import AccessEvent, DoorEvent
from contracts.topics import GateAddress, GateChannel, gate_topic
from tests.gatekit import dormguard_env
from tests.keys import signing_config

SITE = "campus"
BUILDING = "b1"
GATE = "g1"


def gateway_config(tmp: Path, port: int, *, api_port: int = 0, **overrides: Any) -> dict[str, Any]:
    """A development-mode gateway config on embedded SQLite files under ``tmp``."""
    config: dict[str, Any] = {
        "site": SITE,
        "mode": "development",
        # A fresh client id per config: a persistent session of an earlier test must not
        # hand its queued messages to this one.
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"gw-{uuid.uuid4().hex[:10]}"},
        "database": {"url": f"sqlite:///{tmp / 'gateway.db'}"},
        "timeseries": {"sqlite": {"path": str(tmp / "series.db")}},
        "api": {"host": "127.0.0.1", "port": api_port},
        "buildings": [{"id": BUILDING}],
        "gates": [{"building": BUILDING, "id": GATE, "direction": "in"}],
        "command_signing": signing_config(),
    }
    config.update(overrides)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def access_event(
    i: int,
    *,
    decision: str = "granted",
    person: str | None = None,
    reason: str | None = None,
    direction: str = "in",
    gate: str = GATE,
    **extra: Any,
) -> AccessEvent:
    """The i-th test access event of a gate (seq = i)."""
    return AccessEvent(
        producer=f"gate-{gate}",
        site=SITE,
        building=BUILDING,
        gate_id=gate,
        direction=direction,  # type: ignore[arg-type]
        decision=decision,  # type: ignore[arg-type]
        method="face",
        person_id=person
        if person is not None
        else (f"p{i % 50}" if decision == "granted" else None),
        reason=reason or ("match" if decision == "granted" else "unknown_face"),
        faces_in_view=1,
        seq=i,
        **extra,
    )


def door_event(kind: str, *, gate: str = GATE, **extra: Any) -> DoorEvent:
    return DoorEvent(
        producer=f"gate-{gate}", site=SITE, building=BUILDING, gate_id=gate, kind=kind, **extra
    )  # type: ignore[arg-type]


def event_topic(gate: str = GATE, channel: GateChannel = GateChannel.EVENT) -> str:
    return gate_topic(GateAddress(SITE, BUILDING, gate), channel)


class Publisher:
    """A QoS 1 publisher that waits for every PUBACK (what a gate's outbox does)."""

    def __init__(self, port: int, client_id: str = "test-pub") -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.max_inflight_messages_set(200)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def publish_many(self, items: list[tuple[str, bytes]], qos: int = 1) -> None:
        infos = [self.client.publish(t, p, qos=qos) for t, p in items]
        for info in infos:
            info.wait_for_publish(30)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class BackgroundPublisher(threading.Thread):
    """Publishes events at a steady rate until stopped; records every acknowledged event id."""

    def __init__(self, port: int, count: int, rate_per_s: float) -> None:
        super().__init__(daemon=True)
        self.port, self.count, self.rate = port, count, rate_per_s
        self.acked: list[str] = []

    def run(self) -> None:
        pub = Publisher(self.port, client_id="load-pub")
        try:
            start = time.monotonic()
            for i in range(1, self.count + 1):
                ev = access_event(i)
                pub.publish(event_topic(), ev.to_bytes())
                self.acked.append(ev.event_id)
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        finally:
            pub.stop()


def spawn_gateway(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """A real `dormguard gateway` process, output appended to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "dormguard.cli", "gateway", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=dormguard_env(),
    )


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
