"""Gateway ingest throughput and alert latency, against a bare paho subscriber in the same run.

1. Throughput: N access events (QoS 1) are queued in a private mosquitto for a persistent
   session, then drained (sustained rate: from the first message handled to the last, so
   connecting and starting up count for neither side), first by a bare paho subscriber that
   only counts (auto-ack), then by the real gateway (validate, dedup, hash-chained access log,
   presence, rules, time series, manual ack after commit).
   ``events_per_s`` / ``bare_per_s`` = ``ratio``.
2. Alert latency: the gateway with its API runs; a guard's WebSocket is connected; a publisher
   sends 1,000 events/s for ALERT_SECONDS, one in ten a door ``forced_open`` of a new gate (each
   raises a new alert). ``alert_p99_ms`` is publish -> the alert arriving on the WebSocket.

The gateway runs with `ingest_worker: true` (storing in a child process beside the MQTT client);
the in-process figure is printed too. Both are measured again with the rules in the elected
evaluator over the rule journal (what replicas run, docs/decisions/0016). Prints, last, one JSON
line: events_per_s, bare_per_s, ratio, in_process_per_s, in_process_ratio, alert_p50_ms,
alert_p99_ms, elected_per_s, elected_ratio, elected_alert_p50_ms, elected_alert_p99_ms.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as paho
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from contracts.topics import GateChannel, gate_filter
from edge.localbroker import LocalBroker, free_port
from gateway.app import Gateway, build_gateway
from gateway.config import GatewayConfig
from tests.gatewayproc import access_event, door_event, event_topic, gateway_config

N = 40_000
ALERT_RATE = 1000
ALERT_SECONDS = 10


def _publish_events(port: int, count: int) -> None:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    topic = event_topic()
    infos = [client.publish(topic, access_event(i + 1).to_bytes(), qos=1) for i in range(count)]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def _preload(port: int, count: int) -> None:
    p = mp.Process(target=_publish_events, args=(port, count))
    p.start()
    p.join()


def _session_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return props


def bare_drain(port: int) -> float:
    """A bare subscriber's drain rate of N queued QoS 1 events (messages/s)."""
    received = 0
    first_at = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        nonlocal received, first_at
        received += 1
        if received == 1:
            first_at = time.monotonic()
        if received >= N:
            done.set()

    def client() -> paho.Client:
        c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bare", protocol=MQTTProtocolVersion.MQTTv5
        )
        c.on_message = on_message
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_connect = lambda cl, *a: cl.subscribe(gate_filter("campus", GateChannel.EVENT), 1)
        return c

    c = client()
    c.connect(
        "127.0.0.1", port, clean_start=MQTT_CLEAN_START_FIRST_ONLY, properties=_session_props()
    )
    c.loop_start()
    subscribed.wait(10)
    c.disconnect()
    c.loop_stop()
    _preload(port, N)
    c = client()
    c.connect("127.0.0.1", port, clean_start=False, properties=_session_props())
    c.loop_start()
    done.wait(300)
    elapsed = time.monotonic() - first_at
    c.disconnect()
    c.loop_stop()
    return (received - 1) / elapsed


def gateway_drain(port: int, workdir: Path, *, worker: bool, elected: bool = False) -> float:
    """The gateway's drain rate of N queued events into its stores (events/s); ``elected``:
    the rules run in the elected evaluator over the rule journal, as with replicas."""
    config = GatewayConfig.model_validate(
        gateway_config(workdir, port, ingest_worker=worker, **_evaluation(elected))
    )
    first = build_gateway(config)
    first.start(wait_broker_s=10)  # creates the persistent session and its subscriptions
    first.stop()
    _preload(port, N)
    gw = build_gateway(config)
    gw.start(wait_broker_s=10)
    deadline = time.monotonic() + 600
    while gw.services.counters.stored == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    first_at, first = time.monotonic(), gw.services.counters.stored
    while gw.services.counters.stored < N and time.monotonic() < deadline:
        time.sleep(0.001)
    elapsed = time.monotonic() - first_at
    stored = gw.services.counters.stored
    gw.stop()
    return (stored - first) / elapsed


def _evaluation(elected: bool) -> dict[str, Any]:
    return {"alert_evaluation": "elected" if elected else "inline"}


def alert_latency(
    port: int, workdir: Path, *, worker: bool, elected: bool = False
) -> tuple[float, float, int]:
    """p50 and p99 ms from publishing an alert-raising event to the WebSocket, and the count."""
    import uvicorn
    import websockets

    from gateway.api import create_app
    from gateway.auth.users import create_user

    api_port = free_port()
    config = GatewayConfig.model_validate(
        gateway_config(
            workdir, port, api_port=api_port, ingest_worker=worker, **_evaluation(elected)
        )
    )
    gw: Gateway = build_gateway(config)
    gw.start(wait_broker_s=10)
    with gw.services.sessions.begin() as s:
        create_user(s, "bench-guard", "bench-password-123", "guard", mode="development")
    server = uvicorn.Server(
        uvicorn.Config(create_app(gw.services), host="127.0.0.1", port=api_port, log_level="error")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    import httpx

    token = httpx.post(
        f"http://127.0.0.1:{api_port}/api/auth/login",
        json={"username": "bench-guard", "password": "bench-password-123"},
    ).json()["token"]
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    total = ALERT_RATE * ALERT_SECONDS // 10

    async def listen(ready: threading.Event) -> None:
        url = f"ws://127.0.0.1:{api_port}/api/ws/alerts"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            ready.set()
            while len(received) < total:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=15)
                except TimeoutError:
                    return
                at = time.monotonic()
                msg = json.loads(raw)
                if msg.get("type") != "alert":
                    continue
                origin = msg["alert"]["originator"]
                if msg["alert"]["type"] == "door_forced_open" and origin not in received:
                    received[origin] = at

    ready = threading.Event()
    listener = threading.Thread(target=lambda: asyncio.run(listen(ready)), daemon=True)
    listener.start()
    ready.wait(10)
    time.sleep(0.5)

    pub = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="alert-pub", protocol=MQTTProtocolVersion.MQTTv5
    )
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    start = time.monotonic()
    for n in range(ALERT_RATE * ALERT_SECONDS):
        if n % 10 == 0:
            gate = f"a{n // 10}"
            ev = door_event("forced_open", gate=gate)
            sent[f"gate:campus/b1/{gate}"] = time.monotonic()
            pub.publish(event_topic(gate, GateChannel.DOOR), ev.to_bytes(), qos=1)
        else:
            pub.publish(event_topic(), access_event(10_000_000 + n).to_bytes(), qos=1)
        ahead = start + (n + 1) / ALERT_RATE - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    listener.join(30)
    pub.disconnect()
    pub.loop_stop()
    server.should_exit = True
    gw.stop()
    latencies = sorted((received[k] - sent[k]) * 1000 for k in sent if k in received)
    if not latencies:
        return float("nan"), float("nan"), 0
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return p50, p99, len(latencies)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        broker = LocalBroker(root / "broker")
        broker.start()
        try:
            bare = bare_drain(broker.port)
            print(f"bare paho subscriber: {bare:,.0f} events/s", flush=True)
            (root / "gw").mkdir()
            in_process = gateway_drain(broker.port, root / "gw", worker=False)
            print(f"gateway, in-process ingest: {in_process:,.0f} events/s", flush=True)
            (root / "gw-w").mkdir()
            events = gateway_drain(broker.port, root / "gw-w", worker=True)
            print(f"gateway, ingest worker process: {events:,.0f} events/s", flush=True)
            (root / "gw2").mkdir()
            p50, p99, count = alert_latency(broker.port, root / "gw2", worker=True)
            print(f"alert publish -> WebSocket: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({count})")
            (root / "gw-e").mkdir()
            elected = gateway_drain(broker.port, root / "gw-e", worker=True, elected=True)
            print(f"gateway, elected evaluator (replica mode): {elected:,.0f} events/s")
            (root / "gw-e2").mkdir()
            e50, e99, ecount = alert_latency(broker.port, root / "gw-e2", worker=True, elected=True)
            print(f"elected: alert publish -> WebSocket p50 {e50:.1f} ms, p99 {e99:.1f} ms")
        finally:
            broker.stop()
    print(
        json.dumps(
            {
                "events_per_s": round(events),
                "bare_per_s": round(bare),
                "ratio": round(events / bare, 3),
                "in_process_per_s": round(in_process),
                "in_process_ratio": round(in_process / bare, 3),
                "alert_p50_ms": round(p50, 1),
                "alert_p99_ms": round(p99, 1),
                "alerts_measured": count,
                "elected_per_s": round(elected),
                "elected_ratio": round(elected / bare, 3),
                "elected_alert_p50_ms": round(e50, 1),
                "elected_alert_p99_ms": round(e99, 1),
                "elected_alerts_measured": ecount,
            }
        )
    )


if __name__ == "__main__":
    main()
