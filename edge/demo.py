"""`dormguard demo`: the system on embedded defaults, on this machine only.

Starts a private mosquitto on a free port, enrols a sample student from a photo, and runs one
entrance gate whose camera is a looping image sequence made from the sample photos: the student
(a different photo than the enrolled one) is granted, a stranger is denied, and a card reader
swipes a card now and then. Access events are printed as they arrive over MQTT.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from contracts.models import CardSwipe
from contracts.registry import PayloadError, parse_message
from contracts.topics import GateAddress, GateChannel, gate_filter, gate_topic
from contracts.yamlconfig import load_yaml_model
from edge.gate.app import build_gate
from edge.gate.config import GateConfig
from edge.gate.faces import DlibFaceEngine, read_image
from edge.gate.gallery import Gallery, GalleryStore, generate_key, load_key
from edge.gate.model import Person
from edge.localbroker import LocalBroker
from edge.mqtt import MqttLink, ReceivedMessage
from edge.runtime import stop_on_signals
from edge.samples import gate_frame, noise_frame, sample_photos_dir
from edge.settings import MqttSettings

log = logging.getLogger(__name__)

SITE, BUILDING, GATE = "demo-campus", "b1", "east-entrance"
STUDENT, CARD_USER = "s2024001", "s2024002"
CARD_UID = "04A1B2C3"


def _prepare(workdir: Path) -> Path:
    """Key, gallery and camera frames for the demo gate; returns the gate config path."""
    key_file = workdir / "gallery.key"
    key_file.write_text(generate_key() + "\n")
    key_file.chmod(0o600)
    key = load_key(key_file=key_file, key_env=None)
    photos = sample_photos_dir()
    engine = DlibFaceEngine(scale=1.0, upsample=1, min_face_px=40)
    image = read_image(str(photos / "obama.jpg"))
    detection = engine.detect(image)
    encoding = engine.encode(detection.rgb, detection.boxes[:1])[0]
    people = {
        STUDENT: Person(STUDENT, buildings=frozenset({BUILDING})),
        CARD_USER: Person(
            CARD_USER, buildings=frozenset({BUILDING}), card_uids=frozenset({CARD_UID})
        ),
    }
    gallery = Gallery(1, people, (STUDENT,), np.asarray([encoding], dtype=np.float32))
    GalleryStore(workdir / "gallery.bin", key).save(gallery)

    frames = workdir / "camera"
    frames.mkdir()
    sequence = (
        [noise_frame(i) for i in range(10)]
        + [gate_frame(photos / "obama2.jpg")] * 20
        + [noise_frame(100 + i) for i in range(20)]
        + [gate_frame(photos / "biden.jpg")] * 20
        + [noise_frame(200 + i) for i in range(10)]
    )
    for index, frame in enumerate(sequence):
        cv2.imwrite(str(frames / f"{index:04d}.jpg"), frame)
    return workdir / "gallery.bin"


def _config(workdir: Path, port: int) -> Path:
    config: dict[str, Any] = {
        "site": SITE,
        "building": BUILDING,
        "gate": {"id": GATE, "direction": "in"},
        "mqtt": {"host": "127.0.0.1", "port": port},
        "source": {"kind": "folder", "target": str(workdir / "camera"), "fps": 10},
        "gallery": {
            "path": str(workdir / "gallery.bin"),
            "key": {"file": str(workdir / "gallery.key")},
        },
        "outbox": {"path": str(workdir / "outbox.db")},
        "door": {"kind": "simulated", "open_time_s": 2.0},
        "heartbeat_s": 5.0,
    }
    path = workdir / "gate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class _Monitor:
    """Prints access events as a guard's screen would, and counts them."""

    def __init__(self) -> None:
        self.counts = {"granted": 0, "denied": 0, "door_events": 0, "heartbeats": 0}
        self._lock = threading.Lock()

    def __call__(self, msg: ReceivedMessage) -> None:
        try:
            payload = parse_message(msg.topic, msg.payload)
        except PayloadError as exc:
            print(f"  ! rejected message: {exc}")
            return
        data = payload.model_dump()
        with self._lock:
            if msg.topic.endswith("/event"):
                self.counts[data["decision"]] += 1
                who = data["person_id"] or "unknown person"
                extra = f" distance {data['distance']:.2f}" if data["distance"] is not None else ""
                print(
                    f"  {data['decision'].upper():8s} {who:16s} by {data['method']:4s} "
                    f"({data['reason']}){extra}"
                )
            elif msg.topic.endswith("/door"):
                self.counts["door_events"] += 1
            elif msg.topic.endswith("/heartbeat"):
                self.counts["heartbeats"] += 1


def run_demo(duration: float | None) -> int:
    """Run the demo until Ctrl-C, or for `duration` seconds then print counts as JSON."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    stop = threading.Event()

    stop_on_signals(stop.set)
    with tempfile.TemporaryDirectory(prefix="dormguard-demo-") as tmp:
        workdir = Path(tmp)
        print("dormguard demo: preparing sample gallery and camera frames ...")
        _prepare(workdir)
        broker = LocalBroker(workdir / "mosquitto")
        broker.start()
        monitor = _Monitor()
        watcher = MqttLink(MqttSettings(port=broker.port), client_id="demo-console")
        for channel in (GateChannel.EVENT, GateChannel.DOOR, GateChannel.HEARTBEAT):
            watcher.subscribe(gate_filter(SITE, channel), monitor)
        watcher.start()
        config = load_yaml_model(_config(workdir, broker.port), GateConfig)
        daemon = build_gate(config)
        daemon.engine.start()  # type: ignore[attr-defined]
        daemon.start()
        runner = threading.Thread(target=daemon.run, name="gate", daemon=True)
        runner.start()
        print(f"broker: mqtt://127.0.0.1:{broker.port}  gate: {SITE}/{BUILDING}/{GATE}")
        print("camera: a looping sequence (student walks up, leaves, a stranger walks up)")
        print("press Ctrl-C to stop" if duration is None else f"running for {duration:.0f} s")
        card_topic = gate_topic(GateAddress(SITE, BUILDING, GATE), GateChannel.CARD)
        started = time.monotonic()
        next_swipe = started + 3.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                if duration is not None and now - started >= duration:
                    break
                if now >= next_swipe:
                    swipe = CardSwipe(producer="demo-reader", card_uid=CARD_UID)
                    watcher.publish(card_topic, swipe.to_bytes(), qos=1)
                    next_swipe = now + 15.0
                stop.wait(0.2)
        finally:
            daemon.request_stop()
            runner.join(timeout=5)
            daemon.stop()
            time.sleep(0.3)
            watcher.stop(announce_offline=False)
            broker.stop()
    counts = monitor.counts
    if duration is not None:
        print(json.dumps(counts))
        return 0 if counts["granted"] > 0 and counts["denied"] > 0 else 1
    return 0
