"""Reproducer: after a broker restart mosquitto drops part of a shared subscription's messages.

Found by the chaos run (docs/reliability.md). One simulated gate (bench/chaos/gatesim.py: the
real outbox and publisher) publishes 20 events/s; one subscriber holds a persistent MQTT 5
session (clean start off, session expiry 1 h) on ``$share/g/dorm/campus/b1/gate/+/event``, as a
gateway replica does, and reconnects ``--subscriber-delay`` seconds after a disconnect. The
broker (tests/broker.py, persistence on) is restarted three times. The gate's outbox empties
(the broker acknowledged every event), yet after the first restart the subscriber receives only
about a third of the events, in a steady pattern (2 of every 6), until the end: the rest were
acknowledged to the gate and delivered to nobody. With a plain subscription (``--plain``) the
same run loses nothing; unsubscribing before subscribing again (``--unsubscribe-first``) does
not help. Seen with mosquitto 2.0.11 (Debian 12); with a 1 s reconnect delay the loss is
intermittent (0, 1 or many events).

    python bench/chaos/shared_restart.py                       # shared: loses events
    python bench/chaos/shared_restart.py --plain               # plain: loses none

Prints one JSON line: produced, received, missing (and the first missing seq numbers); exit
status 1 when events went missing.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.broker import Broker

FILTER = "dorm/campus/b1/gate/+/event"


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    topic_filter = FILTER if args.plain else f"$share/g/{FILTER}"
    broker = Broker(workdir / "broker")
    broker.start()
    received: set[int] = set()

    def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        received.add(int(json.loads(msg.payload)["seq"]))

    def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        if args.unsubscribe_first and flags.session_present:
            client.unsubscribe(topic_filter)
        client.subscribe(topic_filter, qos=1)

    sub = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="shared-restart", protocol=MQTTProtocolVersion.MQTTv5
    )
    sub.on_message = on_message
    sub.on_connect = on_connect
    # The subscriber comes back after the gate, as a busy gateway may: the gate's outbox
    # replays into the restarted broker before the group has a connected member.
    delay = max(1, int(args.subscriber_delay))
    sub.reconnect_delay_set(delay, delay)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    sub.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    sub.loop_start()
    time.sleep(1.0)
    ledger = workdir / "ledger.txt"
    gate = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("gatesim.py")),
            "--gate",
            "g01",
            "--port",
            str(broker.port),
            "--outbox",
            str(workdir / "outbox.db"),
            "--ledger",
            str(ledger),
            "--rate",
            "20",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(args.restarts):
            time.sleep(3.0)
            broker.stop()
            broker.start()
        time.sleep(3.0)
        gate.send_signal(signal.SIGUSR1)  # stop producing, then let everything arrive
        time.sleep(5.0)
    finally:
        gate.terminate()
        gate.wait(20)
        sub.loop_stop()
        broker.stop()
    produced = [
        int(line.split()[0])
        for line in ledger.read_text().splitlines()
        if line.split()[1:2] == ["event"]
    ]
    missing = sorted(set(produced) - received)
    return {
        "subscription": "plain" if args.plain else "shared",
        "unsubscribe_first": args.unsubscribe_first,
        "subscriber_delay_s": args.subscriber_delay,
        "produced": len(produced),
        "received": len(received & set(produced)),
        "missing": len(missing),
        "missing_first": missing[:10],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", action="store_true", help="a plain (not shared) subscription")
    parser.add_argument(
        "--unsubscribe-first",
        action="store_true",
        help="on a reconnect with the session present, unsubscribe before subscribing",
    )
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument(
        "--subscriber-delay", type=float, default=3.0, help="seconds before it reconnects"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shared-restart-") as tmp:
        result = run(args, Path(tmp))
    print(json.dumps(result), flush=True)
    return 1 if result["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
