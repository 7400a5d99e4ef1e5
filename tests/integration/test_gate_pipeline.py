"""The gate pipeline with real photos through the real models and a real mosquitto broker."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts.gallery_crypto import encrypt_gallery
from contracts.models import AccessEvent, Command, GalleryUpdate, Heartbeat
from contracts.registry import parse_message
from contracts.yamlconfig import load_yaml_model
from edge.gate.app import build_gate
from edge.gate.config import GateConfig
from edge.gate.daemon import GateDaemon
from edge.gate.door import SimulatedDoor
from edge.gate.frames import Frame
from tests.broker import Broker, Collector
from tests.gatekit import (
    CARD_HOLDER,
    ENROLLED,
    ScriptedSource,
    gate_config,
    make_gallery,
    save_gallery,
    write_key,
)
from tests.keys import TEST_SIGNER
from tests.photos import gate_frame, noise_frame

GATE_TOPICS = "dorm/campus1/b1/gate/g1/#"


def _frames(images: list[np.ndarray], daemon: GateDaemon) -> list[Frame]:
    return [Frame(img, i, daemon.clock()) for i, img in enumerate(images)]


def _events(collector: Collector, kind: type[Any]) -> list[Any]:
    out = []
    for topic, payload, _ in collector.snapshot():
        model = parse_message(topic, payload)
        if isinstance(model, kind):
            out.append(model)
    return out


@pytest.fixture
def gate(tmp_path: Path, broker: Broker) -> Iterator[tuple[GateDaemon, Collector]]:
    key = write_key(tmp_path / "gallery.key")
    gallery_path = tmp_path / "gallery.bin"
    save_gallery(gallery_path, key, make_gallery())
    cfg_path = gate_config(
        tmp_path,
        port=broker.port,
        source={"kind": "folder", "target": str(tmp_path)},
        key_file=tmp_path / "gallery.key",
        gallery_path=gallery_path,
    )
    config = load_yaml_model(cfg_path, GateConfig)
    collector = Collector(broker.port, GATE_TOPICS, client_id=f"c-{uuid.uuid4().hex[:8]}").start()
    daemon = build_gate(config, source=ScriptedSource())
    daemon.start()
    assert daemon.link.wait_ready(10)
    yield daemon, collector
    daemon.stop()
    collector.stop()


def _run(daemon: GateDaemon, images: list[np.ndarray]) -> list[Any]:
    decisions = []
    for frame in _frames(images, daemon):
        decisions.extend(daemon.process_frame(frame).decisions)
    assert daemon.publisher.flush(10)
    return decisions


def test_enrolled_student_is_granted_from_a_different_photo_and_the_door_opens(
    gate: tuple[GateDaemon, Collector], photos: Path
) -> None:
    daemon, collector = gate
    decisions = _run(daemon, [gate_frame(photos / "obama2.jpg")] * 3)
    assert [d.granted for d in decisions] == [True]
    assert decisions[0].person_id == ENROLLED
    door = daemon.door
    assert isinstance(door, SimulatedDoor)
    assert [state for _, state in door.transitions][:1] == ["unlocked"]
    collector.wait_for(lambda m: any("/event" in t for t, _, _ in m))
    (event,) = _events(collector, AccessEvent)
    assert event.decision == "granted"
    assert event.person_id == ENROLLED
    assert event.method == "face"
    assert event.distance is not None and event.distance < 0.5
    assert event.margin is not None and event.margin > 0
    assert event.faces_in_view == 1
    assert event.latency.encode_ms > 0


def test_other_person_is_denied_as_unknown_face_and_door_stays_locked(
    gate: tuple[GateDaemon, Collector], photos: Path
) -> None:
    daemon, collector = gate
    decisions = _run(daemon, [gate_frame(photos / "biden.jpg")] * 6)
    assert [(d.granted, d.reason.value) for d in decisions] == [(False, "unknown_face")]
    door = daemon.door
    assert isinstance(door, SimulatedDoor)
    assert door.transitions == [] or all(s == "locked" for _, s in door.transitions)
    collector.wait_for(lambda m: any("/event" in t for t, _, _ in m))
    (event,) = _events(collector, AccessEvent)
    assert (event.decision, event.reason, event.person_id) == ("denied", "unknown_face", None)


def test_noise_frames_make_no_decision_and_no_event(
    gate: tuple[GateDaemon, Collector],
) -> None:
    daemon, collector = gate
    decisions = _run(daemon, [noise_frame(i) for i in range(4)])
    assert decisions == []
    time.sleep(0.3)
    assert _events(collector, AccessEvent) == []


def test_card_and_pin_go_through_the_same_policy(gate: tuple[GateDaemon, Collector]) -> None:
    daemon, collector = gate
    assert daemon.handle_card("04A1B2C3").granted
    denied_unknown = daemon.handle_card("FFFFFFFF")
    expired = daemon.handle_card("0BADC0DE")
    assert (denied_unknown.granted, denied_unknown.reason.value) == (False, "unknown_card")
    assert (expired.granted, expired.reason.value) == (False, "pass_expired")
    assert daemon.publisher.flush(10)
    msgs = collector.wait_for(lambda m: len([t for t, _, _ in m if t.endswith("/event")]) >= 3)
    events = [parse_message(t, p) for t, p, _ in msgs if t.endswith("/event")]
    assert [(e.method, e.decision, e.person_id) for e in events] == [  # type: ignore[attr-defined]
        ("card", "granted", CARD_HOLDER),
        ("card", "denied", None),
        ("card", "denied", "v-expired"),
    ]


def test_gallery_update_over_mqtt_is_applied_and_a_bad_one_keeps_the_last_good(
    gate: tuple[GateDaemon, Collector], broker: Broker, tmp_path: Path
) -> None:
    daemon, collector = gate
    key = (tmp_path / "gallery.key").read_text().strip()
    raw_key = base64.urlsafe_b64decode(key)
    good = GalleryUpdate(
        producer="gateway",
        version=2,
        correlation_id="c-good",
        blob_b64=base64.b64encode(encrypt_gallery(make_gallery(version=2), raw_key)).decode(),
    )
    bad = GalleryUpdate(
        producer="gateway",
        version=3,
        correlation_id="c-bad",
        blob_b64=base64.b64encode(b"DGG1" + b"\x00" * 64).decode(),
    )
    topic = "dorm/campus1/b1/gate/g1/gallery"
    collector.client.publish(topic, TEST_SIGNER.sign(topic, good), qos=1)
    acks = collector.wait_for(lambda m: any(t.endswith("gallery/ack") for t, _, _ in m))
    collector.client.publish(topic, TEST_SIGNER.sign(topic, bad), qos=1)
    acks = collector.wait_for(lambda m: len([1 for t, _, _ in m if t.endswith("gallery/ack")]) >= 2)
    parsed = [json.loads(p) for t, p, _ in acks if t.endswith("gallery/ack")]
    assert [(a["correlation_id"], a["applied"], a["version"]) for a in parsed] == [
        ("c-good", True, 2),
        ("c-bad", False, 2),
    ]
    assert "gallery" in parsed[1]["error"]
    assert daemon.gallery_sync.version == 2
    assert daemon.gallery_sync.face_error is None


def test_unlock_command_opens_the_door_and_is_answered(
    gate: tuple[GateDaemon, Collector],
) -> None:
    daemon, collector = gate
    command = Command(
        producer="gateway",
        correlation_id="fire-1",
        command="unlock",
        duration_s=0.5,
        reason="fire alarm",
    )
    topic = "dorm/campus1/b1/gate/g1/command"
    collector.client.publish(topic, TEST_SIGNER.sign(topic, command), qos=1)
    msgs = collector.wait_for(lambda m: any(t.endswith("command/result") for t, _, _ in m))
    (result,) = [json.loads(p) for t, p, _ in msgs if t.endswith("command/result")]
    assert (result["correlation_id"], result["ok"]) == ("fire-1", True)
    door = daemon.door
    assert isinstance(door, SimulatedDoor)
    assert "unlocked" in [s for _, s in door.transitions]


def test_availability_is_retained_online_and_heartbeat_reports_health(
    gate: tuple[GateDaemon, Collector], broker: Broker
) -> None:
    daemon, _ = gate
    daemon.publish_heartbeat(daemon.clock())
    late = Collector(broker.port, GATE_TOPICS, client_id="late-joiner").start()
    try:
        msgs = late.wait_for(lambda m: any(t.endswith("/availability") for t, _, _ in m))
        avail = [json.loads(p) for t, p, r in msgs if t.endswith("/availability") and r]
        assert avail and avail[-1]["state"] == "online"
    finally:
        late.stop()
    beat = daemon.health.heartbeat(daemon.clock())
    assert isinstance(beat, Heartbeat)
    assert beat.gallery_version == 1
    assert beat.face_path == "ok"
    assert beat.outbox_depth == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_next_person_stepping_into_the_same_spot_gets_their_own_decision(
    gate: tuple[GateDaemon, Collector], photos: Path
) -> None:
    """A decided face is re-verified, so a stranger replacing a student is not let through."""
    daemon, _ = gate
    clock = FakeClock()
    daemon.clock = clock
    student, stranger = gate_frame(photos / "obama2.jpg"), gate_frame(photos / "biden.jpg")
    decisions = []
    for image in [student] * 3 + [stranger] * 8:
        clock.now += 0.4  # 2.5 fps: the stranger stays in the same spot for 3.2 s
        decisions.extend(daemon.process_frame(Frame(image, 0, clock.now)).decisions)
    assert len({t.track_id for t in daemon.tracker.tracks}) == 1  # one continuous track
    assert [(d.granted, d.person_id, d.reason.value) for d in decisions] == [
        (True, ENROLLED, "granted"),
        (False, None, "unknown_face"),
    ]


def test_a_student_standing_at_the_gate_is_not_reported_again_within_the_cooldown(
    gate: tuple[GateDaemon, Collector], photos: Path
) -> None:
    daemon, _ = gate
    clock = FakeClock()
    daemon.clock = clock
    student = gate_frame(photos / "obama3.jpg")
    decisions = []
    for _ in range(20):  # 6 s in view, re-verified every second, cooldown 10 s
        clock.now += 0.3
        decisions.extend(daemon.process_frame(Frame(student, 0, clock.now)).decisions)
    assert [(d.granted, d.person_id) for d in decisions] == [(True, ENROLLED)]


def test_door_contact_over_mqtt_reports_forced_and_held_open(
    tmp_path: Path, broker: Broker
) -> None:
    """Opening without a grant is 'forced_open'; open too long is 'held_open', once."""
    key = write_key(tmp_path / "gallery.key")
    save_gallery(tmp_path / "gallery.bin", key, make_gallery())
    cfg_path = gate_config(
        tmp_path,
        port=broker.port,
        source={"kind": "folder", "target": str(tmp_path)},
        key_file=tmp_path / "gallery.key",
        gallery_path=tmp_path / "gallery.bin",
        door={
            "kind": "simulated",
            "open_time_s": 1.0,
            "contact": {"kind": "mqtt", "topic": "sensors/g1/contact", "held_open_after_s": 0.3},
        },
    )
    collector = Collector(broker.port, "dorm/campus1/b1/gate/g1/door", client_id="door-watch")
    collector.start()
    daemon = build_gate(load_yaml_model(cfg_path, GateConfig), source=ScriptedSource())
    daemon.start()
    try:
        assert daemon.link.wait_ready(10)
        collector.client.publish("sensors/g1/contact", b"OPEN", qos=1)
        collector.wait_for(lambda m: len(m) >= 2)
        time.sleep(0.4)
        daemon.housekeeping()
        daemon.housekeeping()
        collector.client.publish("sensors/g1/contact", b'{"contact": true}', qos=1)
        msgs = collector.wait_for(lambda m: len(m) >= 4)
    finally:
        daemon.stop()
        collector.stop()
    kinds = [json.loads(p)["kind"] for _, p, _ in msgs]
    assert kinds == ["opened", "forced_open", "held_open", "closed"]
    seqs = [json.loads(p)["seq"] for _, p, _ in msgs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


def test_snapshots_of_denied_faces_are_off_by_default_and_encrypted_when_enabled(
    tmp_path: Path, broker: Broker, photos: Path
) -> None:
    """No image is kept unless configured; then only denied attempts, encrypted, as JPEG."""
    key = write_key(tmp_path / "gallery.key")
    save_gallery(tmp_path / "gallery.bin", key, make_gallery())
    stranger, student = gate_frame(photos / "biden.jpg"), gate_frame(photos / "obama2.jpg")
    stored: dict[bool, list[Path]] = {}
    for enabled in (False, True):
        run_dir = tmp_path / f"run-{enabled}"
        run_dir.mkdir()
        cfg_path = gate_config(
            run_dir,
            port=broker.port,
            source={"kind": "folder", "target": str(run_dir)},
            key_file=tmp_path / "gallery.key",
            gallery_path=tmp_path / "gallery.bin",
            snapshots={
                "enabled": enabled,
                "directory": str(run_dir / "snaps"),
                "retention_days": 1,
            },
        )
        daemon = build_gate(load_yaml_model(cfg_path, GateConfig), source=ScriptedSource())
        daemon.start()
        try:
            _run(daemon, [student] * 2)
            daemon.tracker.reset()
            _run(daemon, [stranger] * 4)
        finally:
            daemon.stop()
        stored[enabled] = (
            sorted((run_dir / "snaps").glob("*.snap"))
            if enabled
            else sorted(run_dir.rglob("*.snap"))
        )
    assert stored[False] == []
    (snap,) = stored[True]
    raw = snap.read_bytes()
    assert not raw.startswith(b"\xff\xd8")  # not a plain JPEG on disk
    from edge.gate.snapshots import SnapshotStore

    jpeg = SnapshotStore(snap.parent, key=key, retention_s=86400, enabled=True).load(snap)
    assert jpeg.startswith(b"\xff\xd8")
