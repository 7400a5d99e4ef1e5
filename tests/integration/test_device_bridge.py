"""The device bridge against a real mosquitto: vendor payloads in, canonical states out."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contracts.registry import parse_message
from contracts.settings import MqttSettings
from edge.devices.app import build_bridge
from edge.devices.bridge import DeviceBridge
from edge.devices.config import DevicesConfig
from edge.mqtt import MqttLink, Will
from tests.broker import Broker, Collector

STATE = "dorm/campus/b1/room/r101/device/{}/state"


def _config(port: int, **extra: Any) -> DevicesConfig:
    data: dict[str, Any] = {
        "site": "campus",
        "bridge_id": "laundry-b1",
        "mqtt": {"port": port},
        "tick_s": 0.1,
        "health_s": 0.5,
        "telemetry_interval_s": 0,
        "types": {
            "washer": {"start_hold_s": 0, "stop_hold_s": 0.5, "offline_after_s": 30},
            "hair_dryer": {"overrun_s": 0.5, "offline_after_s": 30},
        },
        "devices": [
            {
                "id": "washer-1",
                "kind": "washer",
                "building": "b1",
                "room": "r101",
                "firmware": "tasmota",
                "topic": "washer-r101-1",
            },
            {
                "id": "water-1",
                "kind": "water_dispenser",
                "building": "b1",
                "room": "r101",
                "firmware": "esphome",
                "topic": "dorm-dev/water-r101-1",
            },
            {
                "id": "hd-1",
                "kind": "hair_dryer",
                "building": "b1",
                "room": "r101",
                "firmware": "shelly",
                "topic": "shelly-hairdryer-r101-1",
            },
        ],
    }
    data.update(extra)
    return DevicesConfig.model_validate(data)


@pytest.fixture
def bridge(broker: Broker) -> Iterator[tuple[DeviceBridge, Collector]]:
    collector = Collector(broker.port, "dorm/campus/#", client_id=f"w-{uuid.uuid4().hex[:6]}")
    collector.start()
    bridge = build_bridge(_config(broker.port))
    bridge.start()
    assert bridge.link.wait_ready(10)
    yield bridge, collector
    bridge.stop()
    collector.stop()


def _states(collector: Collector, device: str) -> list[dict[str, Any]]:
    topic = STATE.format(device)
    return [json.loads(p) for t, p, _ in collector.snapshot() if t == topic]


def _wait_state(collector: Collector, device: str, predicate, timeout: float = 10):  # type: ignore[no-untyped-def]
    collector.wait_for(lambda m: any(predicate(s) for s in _states(collector, device)), timeout)
    return _states(collector, device)


def test_tasmota_washer_cycle_runs_and_finishes_through_the_broker(
    bridge: tuple[DeviceBridge, Collector],
) -> None:
    _, collector = bridge
    pub = collector.client
    for power in (0.3, 520, 480, 1):  # idle, running, a short pause that must not end it
        pub.publish(
            "tele/washer-r101-1/SENSOR",
            json.dumps({"ENERGY": {"Power": power, "Total": 1.5}}),
            qos=1,
        )
        time.sleep(0.1)
    pub.publish("tele/washer-r101-1/SENSOR", json.dumps({"ENERGY": {"Power": 450}}), qos=1)
    states = _wait_state(collector, "washer-1", lambda s: s["status"] == "running")
    assert states[-1]["status"] == "running"
    assert states[-1]["remaining_s"] is not None
    pub.publish("tele/washer-r101-1/SENSOR", json.dumps({"ENERGY": {"Power": 0.4}}), qos=1)
    states = _wait_state(collector, "washer-1", lambda s: s["status"] == "finished")
    assert [s["status"] for s in states] == ["idle", "running", "finished"]
    for state in states:  # every state message satisfies the contract
        parse_message(STATE.format("washer-1"), json.dumps(state).encode())


def test_esphome_leak_and_shelly_overrun_become_faults(
    bridge: tuple[DeviceBridge, Collector],
) -> None:
    _, collector = bridge
    pub = collector.client
    pub.publish("dorm-dev/water-r101-1/binary_sensor/leak/state", "ON", qos=1)
    states = _wait_state(collector, "water-1", lambda s: "leak" in s["faults"])
    assert "leak" in states[-1]["faults"]
    pub.publish(
        "shelly-hairdryer-r101-1/status/switch:0",
        json.dumps({"id": 0, "apower": 1500.0, "aenergy": {"total": 5.0}}),
        qos=1,
    )
    for _ in range(12):  # keep it on: overrun after 0.5 s of use
        time.sleep(0.1)
        pub.publish(
            "shelly-hairdryer-r101-1/status/switch:0",
            json.dumps({"id": 0, "apower": 1500.0}),
            qos=1,
        )
    states = _wait_state(collector, "hd-1", lambda s: "overrun" in s["faults"])
    assert states[-1]["status"] == "in_use"
    assert "overrun" in states[-1]["faults"]


def test_malformed_and_unknown_payloads_are_counted_and_the_bridge_keeps_working(
    bridge: tuple[DeviceBridge, Collector],
) -> None:
    bridge_, collector = bridge
    pub = collector.client
    garbage = [
        ("tele/washer-r101-1/SENSOR", b"{not json"),
        ("tele/washer-r101-1/SENSOR", b'{"ENERGY":{"Power":"lots"}}'),
        ("tele/washer-r101-1/LWT", b"Perhaps"),
        ("dorm-dev/water-r101-1/sensor/power/state", b"abc"),
        ("shelly-hairdryer-r101-1/status/switch:0", b"\xff\xfe"),
    ]
    for topic, payload in garbage:
        pub.publish(topic, payload, qos=1)
    pub.publish("tele/washer-r101-1/SENSOR", json.dumps({"ENERGY": {"Power": 600}}), qos=1)
    _wait_state(collector, "washer-1", lambda s: s["status"] == "running")
    assert bridge_.counters.rejected == len(garbage)
    assert (
        "washer-1" in bridge_.counters.last_rejection or "hd-1" in bridge_.counters.last_rejection
    )
    health = collector.wait_for(lambda m: any(t.endswith("/health") for t, _, _ in m))
    (last,) = [json.loads(p) for t, p, _ in health if t.endswith("/health")][-1:]
    assert last["devices"] == 3


LWT_CLIENT = """
import sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
c = paho.Client(CallbackAPIVersion.VERSION2, client_id="plug-washer-r101-1")
c.will_set("tele/washer-r101-1/LWT", "Offline", qos=1, retain=True)
c.connect("127.0.0.1", int(sys.argv[1]), keepalive=5)
c.loop_start()
c.publish("tele/washer-r101-1/LWT", "Online", qos=1, retain=True).wait_for_publish(5)
c.publish("tele/washer-r101-1/SENSOR", '{"ENERGY":{"Power":0.5,"Total":3.0}}', qos=1)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_killed_plug_goes_offline_through_its_real_last_will(
    bridge: tuple[DeviceBridge, Collector], broker: Broker
) -> None:
    _, collector = bridge
    plug = subprocess.Popen(
        [sys.executable, "-c", LWT_CLIENT, str(broker.port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert plug.stdout is not None and plug.stdout.readline().strip() == "ready"
        _wait_state(collector, "washer-1", lambda s: s["online"] and s["status"] == "idle")
        plug.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker must send the will
        states = _wait_state(collector, "washer-1", lambda s: not s["online"], timeout=15)
    finally:
        plug.kill()
        plug.wait()
    assert states[-1]["online"] is False
    assert "offline" in states[-1]["faults"]
    avail = [
        json.loads(p) for t, p, r in collector.snapshot() if t.endswith("washer-1/availability")
    ]
    assert avail[-1]["state"] == "offline"


def test_bridge_availability_is_retained_and_home_assistant_discovery_is_optional(
    broker: Broker,
) -> None:
    watcher = Collector(broker.port, "homeassistant/#", client_id="ha").start()
    bridge = build_bridge(_config(broker.port, home_assistant_discovery=True))
    bridge.start()
    try:
        assert bridge.link.wait_ready(10)
        msgs = watcher.wait_for(lambda m: len(m) >= 6)
        late = Collector(broker.port, "dorm/campus/bridge/#", client_id="late").start()
        avail = late.wait_for(lambda m: any(t.endswith("/availability") for t, _, _ in m))
        late.stop()
    finally:
        bridge.stop()
        watcher.stop()
    configs = {t: json.loads(p) for t, p, _ in msgs}
    assert "homeassistant/sensor/dormguard_washer_1/status/config" in configs
    status = configs["homeassistant/sensor/dormguard_washer_1/status/config"]
    assert status["state_topic"] == STATE.format("washer-1")
    assert [json.loads(p)["state"] for t, p, r in avail if r] == ["online"]


def test_mqtt_link_abort_drops_the_connection_so_the_broker_publishes_the_last_will(
    broker: Broker,
) -> None:
    """abort() sends no DISCONNECT and stops the network loop: the broker sends the will."""
    topic = f"test/abort-{uuid.uuid4().hex[:6]}/availability"
    client_id = f"abort-{uuid.uuid4().hex[:6]}"
    watcher = Collector(broker.port, topic, client_id=f"w-{client_id}").start()
    link = MqttLink(
        MqttSettings(port=broker.port, keepalive_s=5),
        client_id=client_id,
        will=Will(topic, b"offline", b"online"),
    )
    link.start()
    try:
        assert link.wait_connected(10)
        watcher.wait_for(lambda m: [p for _, p, _ in m] == [b"online"])
        link.abort()
        assert not link.connected
        with pytest.raises(ConnectionError):  # stopped: nothing more goes out on this link
            link.publish(topic, b"online")
        msgs = watcher.wait_for(lambda m: len(m) >= 2, timeout=5)
        link.stop()  # a no-op after abort: it must not announce anything
        time.sleep(0.3)
        late = Collector(broker.port, topic, client_id=f"late-{client_id}").start()
        retained = late.wait_for(lambda m: len(m) >= 1)
        late.stop()
    finally:
        link.stop()
        watcher.stop()
    assert [p for _, p, _ in msgs] == [b"online", b"offline"]
    assert [p for _, p, _ in watcher.snapshot()] == [b"online", b"offline"]
    assert retained == [(topic, b"offline", True)]
    # mosquitto's words for a connection that ended without DISCONNECT (the will's trigger)
    log_text = (broker.workdir / "mosquitto.log").read_text()
    assert f"Client {client_id} closed its connection." in log_text
    assert f"Client {client_id} disconnected" not in log_text
