"""A simulated gate daemon: decisions and door events through the real outbox and publisher.

What a real gate does after it has decided (edge/gate/reporting.py `GateReporter` into
edge/publisher.py `ReliablePublisher` over edge/outbox.py `Outbox`, on the daemon's MQTT link
with its retained availability and last will), without a camera: a card decision every
``1/rate`` seconds, and every fourth one the door opens and closes. Heartbeats go out at QoS 0
as the daemon's do.

Each event the outbox stores is also written to ``--ledger`` (``seq kind event_id unix_time``
per line, unbuffered: a kill -9 loses at most the line of the event being stored), so the chaos
run can name the events it counts and tell when each was produced. The outbox's own sequence
(never reused) is the count of produced events. SIGUSR1 stops producing (the run drains);
SIGTERM stops the daemon as systemd would.

Run: ``python bench/chaos/gatesim.py --gate g01 --port 1883 --outbox F --ledger F``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contracts.access import Direction, GateInfo, Method, Reason
from contracts.models import Heartbeat
from contracts.settings import MqttSettings
from contracts.topics import GateAddress, GateChannel, gate_topic
from edge.gate.door_logic import DoorEventOut
from edge.gate.model import AccessDecision
from edge.gate.reporting import GateReporter
from edge.mqtt import MqttLink, availability_link
from edge.outbox import Outbox
from edge.publisher import Payload, ReliablePublisher

log = logging.getLogger("gatesim")


class LedgerPublisher(ReliablePublisher):
    """The gate's durable publisher, writing one ledger line per event the outbox stored."""

    def __init__(self, outbox: Outbox, link: MqttLink, ledger: Path) -> None:
        super().__init__(outbox, link)
        self._ledger = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def send(self, topic: str, payload: Payload, *, qos: int = 1, retain: bool = False) -> int:
        seq = super().send(topic, payload, qos=qos, retain=retain)
        data = payload(seq) if callable(payload) else payload
        message = json.loads(data)
        kind = topic.rsplit("/", 1)[-1]
        line = f"{seq} {kind} {message['event_id']} {time.time():.3f}\n"
        os.write(self._ledger, line.encode())
        return seq

    def close_ledger(self) -> None:
        os.close(self._ledger)


def run(args: argparse.Namespace) -> int:
    gate = GateInfo(args.site, args.building, args.gate, Direction(args.direction))
    producer = f"gate:{args.site}/{args.building}/{args.gate}"
    settings = MqttSettings(
        host=args.host, port=args.port, keepalive_s=args.keepalive, reconnect_max_s=2.0
    )
    addr = GateAddress(args.site, args.building, args.gate)
    link = availability_link(
        settings,
        default_client_id=f"gate-{args.site}-{args.building}-{args.gate}",
        topic=gate_topic(addr, GateChannel.AVAILABILITY),
        producer=producer,
    )
    outbox = Outbox(Path(args.outbox), min_free_bytes=1024 * 1024)
    outbox.open()
    publisher = LedgerPublisher(outbox, link, Path(args.ledger))
    reporter = GateReporter(producer, gate, publisher)
    producing = threading.Event()
    producing.set()
    stopping = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        producing.clear()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)
    publisher.start()
    link.start()
    started = time.monotonic()
    heartbeat_topic = gate_topic(addr, GateChannel.HEARTBEAT)
    next_heartbeat = started
    interval = 1.0 / args.rate
    next_event = started
    decisions = 0
    while not stopping.is_set():
        now = time.monotonic()
        if producing.is_set() and now >= next_event:
            decisions += 1
            person = f"s-{args.gate}-{decisions % 40:02d}"
            decision = AccessDecision(True, Reason.GRANTED, person)
            reporter.access(decision, Method.CARD)
            if decisions % 4 == 0:
                reporter.door([DoorEventOut("opened", now), DoorEventOut("closed", now, 2.0)])
            next_event += interval
            if next_event < now - 1.0:  # fell behind (CPU starved): do not burst
                next_event = now + interval
        if now >= next_heartbeat and link.connected:
            beat = Heartbeat(
                producer=producer,
                fps=0.0,
                source_healthy=True,
                source_detail="",
                outbox_depth=publisher.depth(),
                gallery_version=0,
                face_path="ok",
                uptime_s=round(now - started, 1),
            )
            try:
                link.publish(heartbeat_topic, beat.to_bytes(), qos=0)
            except ConnectionError as exc:
                log.warning("heartbeat not sent: %s", exc)
            next_heartbeat = now + args.heartbeat
        wake = min(next_event, next_heartbeat) if producing.is_set() else next_heartbeat
        stopping.wait(max(0.01, wake - time.monotonic()))
    publisher.flush(args.flush_timeout)
    publisher.stop()
    link.stop()
    publisher.close_ledger()
    outbox.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", default="campus")
    parser.add_argument("--building", default="b1")
    parser.add_argument("--gate", required=True)
    parser.add_argument("--direction", default="in", choices=["in", "out"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keepalive", type=int, default=5)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--rate", type=float, default=2.0, help="decisions per second")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between beats")
    parser.add_argument("--flush-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
