"""End to end: enrolment at the gateway reaches a real gate daemon process, and so does erasure."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import pytest

from contracts.models import AccessEvent, GalleryAck
from tests.broker import Broker, Collector
from tests.gatekit import gate_config, spawn_gate, stop_process
from tests.integration.test_enrolment import BrokerPublisher, make_world, photo_bytes
from tests.photos import gate_frame

pytestmark = pytest.mark.slow

GATE_KEY = "campus1/b1/g1"
GATE_TOPICS = "dorm/campus1/b1/gate/g1/#"
M = TypeVar("M", AccessEvent, GalleryAck)


def _parsed(collector: Collector, kind: type[M], start: int = 0) -> list[M]:
    suffix = "/event" if kind is AccessEvent else "/gallery/ack"
    return [
        kind.model_validate_json(payload)
        for topic, payload, _ in collector.snapshot()[start:]
        if topic.endswith(suffix)
    ]


def _wait(
    collector: Collector,
    kind: type[M],
    found: Callable[[M], bool],
    *,
    start: int = 0,
    timeout: float = 30.0,
) -> M | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for model in _parsed(collector, kind, start):
            if found(model):
                return model
        time.sleep(0.1)
    return None


def test_enrolled_face_opens_a_real_gate_and_erasure_is_confirmed_by_it(
    tmp_path: Path, photos: Path
) -> None:
    """Enrol obama.jpg at the gateway; the gate takes the retained gallery and admits obama2.jpg.
    Erase him; the gate acknowledges the erasure version, the erasure completes, and the same
    face is now an unknown face."""
    broker = Broker(tmp_path / "mosquitto")
    broker.start()
    publisher = BrokerPublisher(broker.port).start()
    world = make_world(tmp_path / "gateway", publisher, site="campus1")
    camera = tmp_path / "camera"
    camera.mkdir()
    cv2.imwrite(str(camera / "obama2.jpg"), gate_frame(photos / "obama2.jpg"))
    config = gate_config(
        tmp_path,
        port=broker.port,
        source={"kind": "folder", "target": str(camera), "fps": 4},
        key_file=tmp_path / "gateway" / "gallery.key",  # the gateway's gallery key
        gallery_path=tmp_path / "gate" / "gallery.bin",
    )
    log = tmp_path / "gate.log"
    collector = Collector(broker.port, GATE_TOPICS, client_id="e2e").start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        world.add_gate("b1", "g1")
        world.add_person("s-obama")
        world.consent("s-obama")
        # Enrolled before the gate runs: it can only learn of it from the retained message.
        report = world.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
        assert report.publication is not None
        assert report.publication.delivered == (GATE_KEY,)
        enrolled_version = report.publication.version

        proc = spawn_gate(config, log)
        ack = _wait(collector, GalleryAck, lambda a: a.version == enrolled_version)
        assert ack is not None, log.read_text()[-3000:]
        assert ack.applied and ack.error is None
        world.service.on_gallery_ack(GATE_KEY, ack)
        assert [d.state for d in world.service.status("s-obama").deliveries] == ["applied"]

        granted = _wait(collector, AccessEvent, lambda e: e.decision == "granted")
        assert granted is not None, log.read_text()[-3000:]
        assert (granted.person_id, granted.method, granted.reason) == (
            "s-obama",
            "face",
            "granted",
        )

        erasure = world.service.erase("s-obama", "admin")
        assert erasure.publication.delivered == (GATE_KEY,)
        erased_version = erasure.erasure.gallery_version
        assert erasure.erasure.pending
        ack = _wait(collector, GalleryAck, lambda a: a.version == erased_version)
        assert ack is not None, log.read_text()[-3000:]
        assert ack.applied and ack.error is None
        assert ack.erased_person_ids == ["s-obama"]  # the gate confirms whose templates went
        after_ack = len(collector.snapshot())
        world.service.on_gallery_ack(GATE_KEY, ack)
        (done,) = world.service.status("s-obama").erasures
        assert done.completed_at is not None and done.unconfirmed_gates == ()

        # A frame already in the pipeline when the new gallery arrived may still be decided on
        # the old one; every decision after the first one on the new gallery is a denial.
        denied = _wait(collector, AccessEvent, lambda e: e.decision == "denied", start=after_ack)
        assert denied is not None, log.read_text()[-3000:]
        assert (denied.reason, denied.person_id) == ("unknown_face", None)
        events = _parsed(collector, AccessEvent, after_ack)
        later = events[[e.event_id for e in events].index(denied.event_id) :]
        assert all(e.decision == "denied" for e in later)
    finally:
        stop_process(proc)
        collector.stop()
        publisher.stop()
        broker.stop()
