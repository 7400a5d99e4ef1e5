"""Device-bridge throughput: readings normalised per second vs a bare paho subscriber.

A publisher process floods a private mosquitto with Tasmota `tele/<topic>/SENSOR` messages for
2,000 appliances (QoS 0, as the plugs send them). The same stream is drained first by a bare
paho subscriber, then by the real DeviceBridge, started as `dormguard devices` starts it
(route, normalise, state machine, publish state changes and decimated telemetry, counters).
Then the bridge gets a paced 2,000 readings/s for 10 s to show it keeps up.
Prints, last, one JSON line: readings_per_s, bare_per_s, ratio, paced_* figures.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.devices.app import start_bridge
from edge.devices.config import DevicesConfig
from edge.localbroker import LocalBroker

DEVICES = 2000
FLOOD = 60_000


def _payload(i: int, n: int) -> bytes:
    power = 5 + (i * 37 + n * 11) % 2000
    return json.dumps(
        {
            "Time": "2026-11-29T10:00:00",
            "ENERGY": {"Total": 10 + n / 1000, "Power": power, "Voltage": 229, "Current": 2.1},
        }
    ).encode()


def publisher(port: int, count: int, rate: float | None) -> None:
    """Publish `count` SENSOR messages round-robin over the devices (rate None = flat out)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{time.time_ns()}")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    payloads = [_payload(i, 0) for i in range(DEVICES)]
    start = time.monotonic()
    for n in range(count):
        i = n % DEVICES
        client.publish(f"tele/plug-{i}/SENSOR", payloads[(i + n // DEVICES) % DEVICES], qos=0)
        if rate is not None and n % 200 == 0:
            ahead = start + n / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        elif n % 5000 == 0:
            time.sleep(0)  # let the network thread breathe
    time.sleep(1.0)
    client.loop_stop()
    client.disconnect()


def bare_subscriber(port: int, expected: int) -> float:
    """Messages/s a bare paho subscriber drains from the flood."""
    got = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(client, userdata, msg):  # type: ignore[no-untyped-def]
        nonlocal got, first, last
        got += 1
        last = time.monotonic()
        if got == 1:
            first = last
        if got >= expected:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bare")
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe("tele/+/SENSOR", qos=0)
    client.loop_start()
    time.sleep(0.5)
    proc = mp.Process(target=publisher, args=(port, FLOOD, None))
    proc.start()
    done.wait(60)
    proc.join()
    client.loop_stop()
    client.disconnect()
    return (got - 1) / (last - first) if got > 1 and last > first else 0.0


def bridge_config(port: int) -> DevicesConfig:
    devices = [
        {
            "id": f"plug-{i}",
            "kind": "washer",
            "building": "b1",
            "room": f"r{i // 10}",
            "firmware": "tasmota",
            "topic": f"plug-{i}",
        }
        for i in range(DEVICES)
    ]
    return DevicesConfig.model_validate(
        {
            "site": "bench",
            "bridge_id": "b1",
            "mqtt": {"port": port},
            "devices": devices,
            "tick_s": 1.0,
            "health_s": 3600,
        }
    )


def bridge_rate(port: int, count: int, rate: float | None) -> tuple[float, int, float]:
    """(readings/s normalised, readings normalised, seconds) for one stream through the bridge."""
    bridge = start_bridge(bridge_config(port))
    assert bridge.link.wait_ready(30)
    stamps: list[float] = []
    seen = 0

    def sampler() -> None:
        while len(stamps) < 2 or bridge.counters.normalized < count:
            n = bridge.counters.normalized
            if n > 0 and not stamps:
                stamps.append(time.monotonic())
            if n >= count:
                break
            time.sleep(0.005)
            if time.monotonic() - t_start > 120:
                break
        stamps.append(time.monotonic())

    t_start = time.monotonic()
    watcher = threading.Thread(target=sampler)
    watcher.start()
    proc = mp.Process(target=publisher, args=(port, count, rate))
    proc.start()
    proc.join()
    watcher.join(timeout=30)
    seen = bridge.counters.normalized
    bridge.stop()
    seconds = stamps[-1] - stamps[0] if len(stamps) >= 2 else 0.0
    return (seen / seconds if seconds else 0.0), seen, seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = LocalBroker(Path(tmp) / "mq")
        broker.start()
        try:
            bare = bare_subscriber(broker.port, FLOOD)
            bridged, flood_seen, flood_seconds = bridge_rate(broker.port, FLOOD, None)
            paced_rate, paced_seen, paced_seconds = bridge_rate(broker.port, 20_000, 2000.0)
        finally:
            broker.stop()
    result = {
        "readings_per_s": round(bridged),
        "bare_per_s": round(bare),
        "ratio": round(bridged / bare, 2) if bare else None,
        "paced_offered_per_s": 2000,
        "paced_normalized": paced_seen,
        "paced_per_s": round(paced_rate),
        "paced_keeps_up": paced_seen >= 20_000 * 0.99,
    }
    print(
        f"bare paho subscriber: {result['bare_per_s']} msg/s; bridge: "
        f"{result['readings_per_s']} readings/s (ratio {result['ratio']})"
    )
    print(f"flood: bridge normalised {flood_seen} of {FLOOD} in {flood_seconds:.2f} s")
    print(f"paced 2,000 readings/s for 10 s: {paced_seen} normalised in {paced_seconds:.1f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
