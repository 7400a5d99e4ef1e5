"""Notifications from a real gateway: MQTT event -> rule -> alert and notice in one transaction
(also in the ingest worker process) -> the main process's sender; and across a kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.topics import GateChannel
from gateway.app import build_gateway
from gateway.config import GatewayConfig
from tests.broker import Broker
from tests.gatewayproc import (
    Publisher,
    door_event,
    event_topic,
    gateway_config,
    spawn_gateway,
    wait_until,
    write_config,
)
from tests.notify_receiver import Receiver, http_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as r:
        yield r


def notify_config(receiver: Receiver) -> dict[str, Any]:
    return {
        "channels": [{"type": "webhook", "name": "hook", "url": f"{receiver.url}/hook"}],
        "routes": [{"name": "guards", "channels": ["hook"], "min_severity": "critical"}],
        "retry": {"first_delay_s": 0.2, "max_delay_s": 0.5, "max_attempts": 100},
        "poll_interval_s": 0.1,
        "lease_s": 2,
    }


def forced_open(port: int) -> None:
    pub = Publisher(port, client_id=f"pub-{time.monotonic_ns()}")
    try:
        pub.publish(event_topic(channel=GateChannel.DOOR), door_event("forced_open").to_bytes())
    finally:
        pub.stop()


@pytest.mark.parametrize("worker", [False, True], ids=["in-process", "worker-process"])
def test_a_forced_door_is_notified_by_the_running_gateway(
    broker: Broker, tmp_path: Path, receiver: Receiver, worker: bool
) -> None:
    raw = gateway_config(
        tmp_path, broker.port, ingest_worker=worker, notifications=notify_config(receiver)
    )
    gw = build_gateway(GatewayConfig.model_validate(raw))
    gw.start(wait_broker_s=10)
    try:
        assert gw.ingest.wait_ready(10)
        forced_open(broker.port)
        wait_until(lambda: receiver.on("/hook"), 15, "the webhook notice")
        (hook,) = receiver.on("/hook")
        assert hook.json["alert"]["type"] == "door_forced_open"
        alert_id = hook.json["alert"]["id"]
        wait_until(
            lambda: [n.status for n in gw.services.alerts.get(alert_id).notifications] == ["sent"],
            5,
            "the notice marked sent",
        )
    finally:
        gw.stop()


@pytest.mark.slow
def test_a_notice_queued_when_the_gateway_is_killed_is_delivered_once_after_restart(
    broker: Broker, tmp_path: Path, receiver: Receiver
) -> None:
    """kill -9 after the alert committed and before any channel accepted it: nothing is lost."""
    receiver.answer_always("/hook", 503, {})
    raw = gateway_config(tmp_path, broker.port, notifications=notify_config(receiver))
    config = write_config(tmp_path / "gateway.yaml", raw)
    log = tmp_path / "gateway.log"
    db = tmp_path / "gateway.db"

    def notices() -> list[tuple[str, int]]:
        if not db.exists():
            return []
        with sqlite3.connect(db) as c:
            try:
                return list(c.execute("select status, attempts from notices"))
            except sqlite3.OperationalError:
                return []

    proc = spawn_gateway(config, log)
    try:
        wait_until(lambda: "API on" in log.read_text(errors="replace"), 30, "gateway start")
        forced_open(broker.port)
        wait_until(lambda: len(receiver.on("/hook")) >= 2, 15, "refused delivery attempts")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        (status, attempts), *_ = notices()
        assert status == "retrying" and attempts >= 2
        before = len(receiver.requests)
        receiver.answer_always("/hook", None)  # the receiver is back
        proc = spawn_gateway(config, log)
        wait_until(lambda: notices() and notices()[0][0] == "sent", 30, "delivery after restart")
        time.sleep(1.0)  # a second delivery would show up meanwhile
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert len(receiver.requests) - before == 1
    assert len(notices()) == 1
