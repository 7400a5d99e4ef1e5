"""Bad config, corrupt gallery, wrong key, dead camera: clear errors, nothing lost.

Everything here is real: a mosquitto broker, gallery and outbox files on disk, the sample photos
through the dlib models, and `dormguard gate` subprocesses for the camera and kill -9 cases.
In-process daemons come from `build_gate` with only the frame source replaced, so the test can
push frames itself.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.gallery_crypto import encrypt_gallery, generate_key
from contracts.models import (
    AccessEvent,
    Availability,
    CardSwipe,
    Command,
    CommandResult,
    GalleryAck,
    GalleryUpdate,
    Heartbeat,
)
from contracts.registry import parse_message
from contracts.yamlconfig import load_yaml_model
from edge.gate.app import build_gate
from edge.gate.config import GateConfig
from edge.gate.daemon import GateDaemon
from edge.gate.door import SimulatedDoor
from edge.gate.frames import Frame
from edge.gate.gallery import GalleryStore
from edge.outbox import Outbox
from tests.broker import Broker, Collector
from tests.gatekit import (
    CARD_HOLDER,
    ScriptedSource,
    gate_config,
    make_gallery,
    save_gallery,
    spawn_gate,
    write_key,
)
from tests.keys import TEST_SIGNER
from tests.photos import gate_frame

GATE = "dorm/campus1/b1/gate/g1"
GATE_TOPICS = f"{GATE}/#"
CARD_UID = "04A1B2C3"
# What the gate itself publishes; the input topics under GATE_TOPICS are the test's own messages.
OUTPUT_SUFFIXES = ("/event", "/door", "/gallery/ack", "/command/result")


# ----------------------------------------------------------------------------- helpers


def _collector(port: int, topic_filter: str = GATE_TOPICS) -> Collector:
    return Collector(port, topic_filter, client_id=f"c-{uuid.uuid4().hex[:8]}").start()


def _config(tmp_path: Path, port: int, **overrides: Any) -> GateConfig:
    path = gate_config(
        tmp_path,
        port=port,
        source={"kind": "folder", "target": str(tmp_path / "no-frames")},
        key_file=tmp_path / "gallery.key",
        gallery_path=tmp_path / "gallery.bin",
        **overrides,
    )
    return load_yaml_model(path, GateConfig)


def _start(daemon: GateDaemon) -> GateDaemon:
    daemon.start()
    assert daemon.link.wait_ready(10), daemon.link.last_error
    return daemon


def _started_gate(config: GateConfig) -> GateDaemon:
    return _start(build_gate(config, source=ScriptedSource()))


def _parsed(collector: Collector, kind: type[Any]) -> list[Any]:
    out = []
    for topic, payload, _ in collector.snapshot():
        if topic.endswith(("/card", "/gallery", "/command", "/contact")):
            continue  # the test's own input messages
        model = parse_message(topic, payload)
        if isinstance(model, kind):
            out.append(model)
    return out


def _wait_parsed(
    collector: Collector,
    kind: type[Any],
    predicate: Callable[[list[Any]], bool],
    timeout: float = 10.0,
) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _parsed(collector, kind)
        if predicate(found):
            return found
        time.sleep(0.05)
    return _parsed(collector, kind)


def _published_heartbeat(daemon: GateDaemon, collector: Collector) -> Heartbeat:
    """Publish a heartbeat now and return it as the broker delivered it."""
    before = len(_parsed(collector, Heartbeat))
    daemon.publish_heartbeat(daemon.clock())
    beats = _wait_parsed(collector, Heartbeat, lambda b: len(b) > before)
    assert len(beats) > before, "heartbeat not delivered"
    return beats[-1]


def _unlocks(daemon: GateDaemon) -> int:
    door = daemon.door
    assert isinstance(door, SimulatedDoor)
    return sum(1 for _, state in door.transitions if state == "unlocked")


def _key_forms(key: bytes) -> list[str]:
    """Every way a key could plausibly leak into a log line."""
    return [
        base64.urlsafe_b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        base64.b64encode(key).decode(),
        key.hex(),
        repr(key)[2:-1],
    ]


@pytest.fixture
def gallery_key(tmp_path: Path) -> bytes:
    return write_key(tmp_path / "gallery.key")


@pytest.fixture
def collector(broker: Broker) -> Iterator[Collector]:
    c = _collector(broker.port)
    yield c
    c.stop()


# ----------------------------------------------------------------------------- corrupt gallery

CORRUPTIONS = {
    "random bytes behind the right magic": b"DGG1" + os.urandom(300),
    "plain garbage": b"this is not a gallery file at all\n" * 8,
    "truncated to two bytes": b"DG",
}


@pytest.mark.parametrize("content", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_gallery_disables_faces_but_the_access_list_copy_keeps_cards_working(
    tmp_path: Path,
    broker: Broker,
    collector: Collector,
    gallery_key: bytes,
    photos: Path,
    content: bytes,
) -> None:
    """A corrupt gallery file: face path off (heartbeat names the file), no face grant, cards ok."""
    config = _config(tmp_path, broker.port)
    first = _started_gate(config)
    try:
        first.gallery_sync.install(encrypt_gallery(make_gallery(version=1), gallery_key))
    finally:
        first.stop()
    gallery_path = tmp_path / "gallery.bin"
    gallery_path.write_bytes(content)

    daemon = _started_gate(config)
    try:
        beat = _published_heartbeat(daemon, collector)
        assert beat.face_path == "disabled"
        assert str(gallery_path) in beat.face_path_detail

        student = gate_frame(photos / "obama2.jpg")
        decisions = []
        for seq in range(4):
            frame = Frame(student, seq, daemon.clock())
            decisions.extend(daemon.process_frame(frame).decisions)
        assert decisions == []
        assert _unlocks(daemon) == 0, "door opened on a face while the gallery is unusable"

        card = daemon.handle_card(CARD_UID)
        assert (card.granted, card.person_id) == (True, CARD_HOLDER)
        assert _unlocks(daemon) == 1
        assert daemon.publisher.flush(10)
        events = _wait_parsed(collector, AccessEvent, lambda e: len(e) >= 1)
        assert [(e.method, e.decision, e.person_id) for e in events] == [
            ("card", "granted", CARD_HOLDER)
        ]
    finally:
        daemon.stop()


def test_gallery_corrupt_from_the_very_first_start_knows_nobody_and_keeps_the_door_locked(
    tmp_path: Path, broker: Broker, collector: Collector, gallery_key: bytes
) -> None:
    """No access-list copy was ever written: the gate fails closed, cards are unknown_card."""
    (tmp_path / "gallery.bin").write_bytes(b"DGG1" + os.urandom(300))
    daemon = _started_gate(_config(tmp_path, broker.port))
    try:
        beat = _published_heartbeat(daemon, collector)
        assert beat.face_path == "disabled"
        assert str(tmp_path / "gallery.bin") in beat.face_path_detail
        card = daemon.handle_card(CARD_UID)
        assert (card.granted, card.reason.value) == (False, "unknown_card")
        assert _unlocks(daemon) == 0
        assert daemon.publisher.flush(10)
        events = _wait_parsed(collector, AccessEvent, lambda e: len(e) >= 1)
        assert [(e.method, e.decision, e.reason) for e in events] == [
            ("card", "denied", "unknown_card")
        ]
    finally:
        daemon.stop()


def test_resending_the_current_gallery_version_repairs_a_corrupt_gallery_file(
    tmp_path: Path, broker: Broker, collector: Collector, gallery_key: bytes
) -> None:
    """The gateway's recovery for a corrupt file is to send the gallery again: it must install."""
    config = _config(tmp_path, broker.port)
    first = _started_gate(config)
    try:
        first.gallery_sync.install(encrypt_gallery(make_gallery(version=1), gallery_key))
    finally:
        first.stop()
    (tmp_path / "gallery.bin").write_bytes(b"garbage")

    daemon = _started_gate(config)
    try:
        assert daemon.gallery_sync.face_error is not None
        update = GalleryUpdate(
            producer="gateway",
            version=1,
            correlation_id="repair-1",
            blob_b64=base64.b64encode(
                encrypt_gallery(make_gallery(version=1), gallery_key)
            ).decode(),
        )
        collector.client.publish(f"{GATE}/gallery", _signed("gallery", update), qos=1)
        (ack,) = _wait_parsed(collector, GalleryAck, lambda a: len(a) >= 1)
        assert ack.correlation_id == "repair-1"
        face_error = daemon.gallery_sync.face_error
        assert face_error is None, (
            f"ack applied={ack.applied} but the face path is still disabled: {face_error}"
        )
        assert ack.applied
        assert GalleryStore(tmp_path / "gallery.bin", gallery_key).load().version == 1
    finally:
        daemon.stop()


# ----------------------------------------------------------------------------- wrong key


def test_gallery_under_another_key_disables_faces_with_wrong_key_and_never_logs_a_key(
    tmp_path: Path,
    broker: Broker,
    collector: Collector,
    gallery_key: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Wrong key at start and in an update: 'wrong key' in the detail and ack, no key in logs."""
    caplog.set_level(logging.DEBUG)
    other_key = base64.urlsafe_b64decode(generate_key())
    save_gallery(tmp_path / "gallery.bin", other_key, make_gallery(version=1))

    daemon = _started_gate(_config(tmp_path, broker.port))
    try:
        beat = _published_heartbeat(daemon, collector)
        assert beat.face_path == "disabled"
        assert "wrong key" in beat.face_path_detail
        assert str(tmp_path / "gallery.bin") in beat.face_path_detail

        update = GalleryUpdate(
            producer="gateway",
            version=2,
            correlation_id="other-key",
            blob_b64=base64.b64encode(encrypt_gallery(make_gallery(version=2), other_key)).decode(),
        )
        collector.client.publish(f"{GATE}/gallery", _signed("gallery", update), qos=1)
        (ack,) = _wait_parsed(collector, GalleryAck, lambda a: len(a) >= 1)
        assert (ack.correlation_id, ack.applied) == ("other-key", False)
        assert ack.error is not None and "wrong key" in ack.error
        assert daemon.gallery_sync.face_error is not None
    finally:
        daemon.stop()

    assert "wrong key" in caplog.text
    wire = b"".join(payload for _, payload, _ in collector.snapshot()).decode(errors="replace")
    for key in (gallery_key, other_key):
        for form in _key_forms(key):
            assert form not in caplog.text
            assert form not in wire


# ----------------------------------------------------------------------------- malformed input


def test_malformed_messages_are_rejected_with_a_reason_and_the_gate_keeps_working(
    tmp_path: Path,
    broker: Broker,
    collector: Collector,
    gallery_key: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Garbage on card, gallery, command and contact topics: skipped; a real card still opens."""
    caplog.set_level(logging.INFO, logger="edge")
    save_gallery(tmp_path / "gallery.bin", gallery_key, make_gallery(version=1))
    contact_topic = f"{GATE}/contact"
    config = _config(
        tmp_path,
        broker.port,
        door={
            "kind": "simulated",
            "open_time_s": 1.0,
            "contact": {"kind": "mqtt", "topic": contact_topic},
        },
    )
    other = Command(producer="gateway", correlation_id="x", command="unlock").to_bytes()
    swipe = CardSwipe(producer="reader", card_uid=CARD_UID).to_bytes()
    undecryptable = _signed(
        "gallery",
        GalleryUpdate(
            producer="gateway",
            version=9,
            correlation_id="undecryptable",
            blob_b64=base64.b64encode(b"DGG1" + os.urandom(64)).decode(),
        ),
    )
    not_base64 = _signed(
        "gallery",
        GalleryUpdate(producer="gateway", version=10, correlation_id="not-base64", blob_b64="***"),
    )
    garbage: dict[str, list[bytes]] = {
        "card": [
            b"\x00\xff\xfe garbage",
            b"",
            b'{"card_uid": "04A1B2C3"',
            b'{"producer": "reader", "card_uid": 4}',
            b'{"producer": "reader", "card_uid": "not-a-card-zz"}',
            other,
        ],
        "gallery": [b"\x89PNG\r\n\x1a\n", b"[1, 2, 3]", swipe, undecryptable, not_base64],
        "command": [
            b"\xde\xad\xbe\xef",
            b"null",
            json.dumps(
                {"producer": "gateway", "correlation_id": "y", "command": "explode"}
            ).encode(),
            swipe,
        ],
        "contact": [b"\xc3\x28", b"ajar", b'{"contact": "maybe"}', swipe],
    }
    ping = _signed("command", Command(producer="gateway", correlation_id="ping", command="ping"))
    daemon = _started_gate(config)
    try:
        for channel, payloads in garbage.items():
            for payload in payloads:
                collector.client.publish(f"{GATE}/{channel}", payload, qos=1)
        # Answered only after everything before it on the same connection was handled.
        collector.client.publish(f"{GATE}/command", ping, qos=1)
        results = _wait_parsed(collector, CommandResult, lambda r: len(r) >= 1)
        assert [(r.correlation_id, r.ok) for r in results] == [("ping", True)]
        assert _unlocks(daemon) == 0, "a garbage message opened the door"

        collector.client.publish(f"{GATE}/card", swipe, qos=1)
        _wait_parsed(collector, AccessEvent, lambda e: len(e) >= 1)
        acks = _wait_parsed(collector, GalleryAck, lambda a: len(a) >= 2)
        time.sleep(0.3)  # let any late output from the garbage show up
        assert [(e.method, e.decision, e.person_id) for e in _parsed(collector, AccessEvent)] == [
            ("card", "granted", CARD_HOLDER)
        ]
        assert sorted((a.correlation_id, a.applied, a.version) for a in acks) == [
            ("not-base64", False, 1),
            ("undecryptable", False, 1),
        ]
        outputs = [t for t, _, _ in collector.snapshot() if t.endswith(OUTPUT_SUFFIXES)]
        assert sorted(outputs) == sorted(
            [
                f"{GATE}/command/result",
                f"{GATE}/event",
                f"{GATE}/gallery/ack",
                f"{GATE}/gallery/ack",
            ]
        )
        assert _unlocks(daemon) == 1
        assert daemon.link.handler_errors == 0, "a handler raised instead of rejecting"
        assert daemon.gallery_sync.version == 1
        assert daemon.gallery_sync.face_error is None
        assert daemon.link.connected
    finally:
        daemon.stop()

    rejections = [
        r.getMessage()
        for r in caplog.records
        if r.name in ("edge.gate.reporting", "edge.gate.gallery_sync")
        and r.levelno >= logging.WARNING
        and "rejected" in r.getMessage()
    ]
    # One logged reason per bad message, naming what was wrong.
    assert len(rejections) == sum(len(p) for p in garbage.values()), "\n".join(rejections)
    assert any("card_uid" in r and "string" in r for r in rejections), "\n".join(rejections)
    assert any("not hex digits" in r for r in rejections), "\n".join(rejections)
    assert any("'explode'" in r or "command:" in r for r in rejections), "\n".join(rejections)


# ----------------------------------------------------------------------------- outbox full


def test_full_disk_holds_access_events_raises_an_alarm_and_delivers_them_in_order_later(
    tmp_path: Path, gallery_key: bytes
) -> None:
    """Outbox cannot store, broker away: grants still happen, the events wait in memory under an
    alarm; once the disk has room and the broker is back, all arrive, in order, none lost.

    The broker is down for the first four events, so nothing can deliver them meanwhile (with a
    broker connected, held events go out at once: the next test covers that). The collector's
    persistent session, made before, keeps its subscription across the broker's restart.
    """
    broker = Broker(tmp_path / "mq")
    broker.start()
    collector = _collector(broker.port)
    broker.stop()
    save_gallery(tmp_path / "gallery.bin", gallery_key, make_gallery(version=1, extra_cards=6))
    config = _config(tmp_path, broker.port)
    daemon = build_gate(config, source=ScriptedSource())
    free_bytes = [0]
    daemon.publisher.outbox.close()
    daemon.publisher.outbox = Outbox(
        config.outbox.path,
        min_free_bytes=config.outbox.min_free_mb * 1024 * 1024,
        disk_free=lambda _folder: free_bytes[0],
    )
    daemon.publisher.outbox.open()
    daemon.start()
    try:
        for i in range(4):
            assert daemon.handle_card(f"CA{i:06X}").granted  # the gate decides locally
        assert daemon.doors_opened == 4
        beat = daemon.health.heartbeat(time.monotonic())
        assert any("outbox full" in alarm for alarm in beat.alarms), beat.alarms
        assert beat.outbox_depth == 4
        assert daemon.publisher.outbox.depth() == 0  # nothing could be stored on disk

        free_bytes[0] = 10 * 1024**3
        broker.start()
        assert daemon.link.wait_ready(20), daemon.link.last_error
        for i in range(4, 6):
            assert daemon.handle_card(f"CA{i:06X}").granted
        assert daemon.publisher.flush(10)
        events = _wait_parsed(collector, AccessEvent, lambda e: len(e) >= 6)
        unique: dict[str, AccessEvent] = {}
        for event in events:
            unique.setdefault(event.event_id, event)
        assert [e.person_id for e in unique.values()] == [f"c{i:04d}" for i in range(6)]
        beat = _published_heartbeat(daemon, collector)
        assert beat.alarms == []
        assert beat.outbox_depth == 0
    finally:
        daemon.stop()
        collector.stop()
        broker.stop()


def _disk_full_gate(tmp_path: Path, port: int, key: bytes) -> GateDaemon:
    """A started gate whose outbox sees a full disk (nothing can be stored)."""
    save_gallery(tmp_path / "gallery.bin", key, make_gallery(version=1, extra_cards=3))
    config = _config(tmp_path, port)
    daemon = build_gate(config, source=ScriptedSource())
    daemon.publisher.outbox.close()
    daemon.publisher.outbox = Outbox(
        config.outbox.path, min_free_bytes=1024 * 1024, disk_free=lambda _folder: 0
    )
    daemon.publisher.outbox.open()
    return _start(daemon)


def test_events_held_in_memory_reach_a_connected_broker_while_the_disk_stays_full(
    tmp_path: Path, broker: Broker, collector: Collector, gallery_key: bytes
) -> None:
    """A full disk must not also cut the gate off: memory-held events go out while connected."""
    daemon = _disk_full_gate(tmp_path, broker.port, gallery_key)
    try:
        for i in range(3):
            assert daemon.handle_card(f"CA{i:06X}").granted
        events = _wait_parsed(collector, AccessEvent, lambda e: len(e) >= 3, timeout=3)
        assert [e.person_id for e in events] == [f"c{i:04d}" for i in range(3)]
    finally:
        daemon.stop()


def test_stopping_while_the_disk_is_full_delivers_held_events_or_says_how_many_are_lost(
    tmp_path: Path,
    broker: Broker,
    collector: Collector,
    gallery_key: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Never drop silently: at shutdown held events are delivered, or their loss is logged."""
    daemon = _disk_full_gate(tmp_path, broker.port, gallery_key)
    try:
        for i in range(3):
            assert daemon.handle_card(f"CA{i:06X}").granted
    finally:
        caplog.clear()
        daemon.stop()
    delivered = _wait_parsed(collector, AccessEvent, lambda e: len(e) >= 3, timeout=1)
    loss_reported = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and re.search(r"\b3\b", r.getMessage())
    ]
    assert len(delivered) == 3 or loss_reported, "3 access events vanished without a word"


# ----------------------------------------------------------------------------- stale gallery


def _gallery_update(key: bytes, *, announced: int, content: int, correlation_id: str) -> bytes:
    blob = encrypt_gallery(make_gallery(version=content), key)
    update = GalleryUpdate(
        producer="gateway",
        version=announced,
        correlation_id=correlation_id,
        blob_b64=base64.b64encode(blob).decode(),
    )
    return _signed("gallery", update)


def _signed(channel: str, message: GalleryUpdate | Command) -> bytes:
    """The message as the gateway sends it to this gate: signed for its topic."""
    return TEST_SIGNER.sign(f"{GATE}/{channel}", message)


@pytest.mark.parametrize(
    ("announced", "content", "must_refuse"),
    # An older announced version is answered "already newer" without looking at the blob; the
    # contract does not say whether that ack is applied=True, so only its version is checked.
    [(1, 1, False), (3, 1, True)],
    ids=["older version announced", "newer version announced, older content"],
)
def test_an_older_gallery_is_acknowledged_with_the_current_version_and_never_installed(
    tmp_path: Path,
    broker: Broker,
    collector: Collector,
    gallery_key: bytes,
    announced: int,
    content: int,
    must_refuse: bool,
) -> None:
    """A stale gallery update (replayed or mislabelled) never downgrades the gate."""
    gallery_path = tmp_path / "gallery.bin"
    save_gallery(gallery_path, gallery_key, make_gallery(version=2))
    daemon = _started_gate(_config(tmp_path, broker.port))
    try:
        assert daemon.gallery_sync.version == 2
        payload = _gallery_update(
            gallery_key, announced=announced, content=content, correlation_id="stale"
        )
        collector.client.publish(f"{GATE}/gallery", payload, qos=1)
        (ack,) = _wait_parsed(collector, GalleryAck, lambda a: len(a) >= 1)
        assert (ack.correlation_id, ack.version) == ("stale", 2)
        if must_refuse:
            assert not ack.applied
            assert ack.error is not None and "stale gallery version 1" in ack.error
        assert daemon.gallery_sync.version == 2
        assert daemon.gallery_sync.face_error is None
        assert GalleryStore(gallery_path, gallery_key).load().version == 2
    finally:
        daemon.stop()


# ----------------------------------------------------------------------------- real processes


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return spawn_gate(config, log)  # type: ignore[no-any-return]


def _availability(collector: Collector) -> list[Availability]:
    return [
        Availability.model_validate_json(p)
        for t, p, _ in collector.snapshot()
        if t.endswith("/availability")
    ]


def _retained_availability(port: int) -> str | None:
    late = _collector(port, f"{GATE}/availability")
    try:
        msgs = late.wait_for(lambda m: any(r for _, _, r in m), timeout=5)
    finally:
        late.stop()
    retained = [Availability.model_validate_json(p) for _, p, r in msgs if r]
    return retained[-1].state if retained else None


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.slow
def test_dead_camera_is_reported_in_the_heartbeat_and_cards_still_open_the_door(
    tmp_path: Path, gallery_key: bytes
) -> None:
    """Camera 57 does not exist: the daemon keeps running, says so, and cards work over MQTT."""
    broker = Broker(tmp_path / "mq")
    broker.start()
    save_gallery(tmp_path / "gallery.bin", gallery_key, make_gallery(version=1))
    config = gate_config(
        tmp_path,
        port=broker.port,
        source={"kind": "camera", "target": "57", "initial_backoff_s": 0.2, "max_backoff_s": 1.0},
        key_file=tmp_path / "gallery.key",
        gallery_path=tmp_path / "gallery.bin",
    )
    log = tmp_path / "gate.log"
    collector = _collector(broker.port)
    proc = _spawn(config, log)
    try:
        beats = _wait_parsed(
            collector,
            Heartbeat,
            lambda b: any(not x.source_healthy and "camera 57" in x.source_detail for x in b),
            timeout=20,
        )
        assert beats, log.read_text()[-3000:]
        beat = beats[-1]
        assert not beat.source_healthy
        assert "camera 57" in beat.source_detail
        assert beat.face_path == "ok"
        assert _retained_availability(broker.port) == "online"

        swipe = CardSwipe(producer="reader:g1", card_uid=CARD_UID)
        collector.client.publish(f"{GATE}/card", swipe.to_bytes(), qos=1)
        events = _wait_parsed(collector, AccessEvent, lambda e: len(e) >= 1)
        assert [(e.method, e.decision, e.person_id) for e in events] == [
            ("card", "granted", CARD_HOLDER)
        ], log.read_text()[-3000:]
        time.sleep(1.0)  # a few more heartbeats: still running, still degraded
        assert proc.poll() is None, log.read_text()[-3000:]
        assert not _parsed(collector, Heartbeat)[-1].source_healthy

        proc.terminate()
        assert proc.wait(15) == 0, log.read_text()[-3000:]
        assert _retained_availability(broker.port) == "offline"
    finally:
        _stop_process(proc)
        collector.stop()
        broker.stop()


@pytest.mark.slow
def test_kill_9_makes_the_broker_publish_the_retained_last_will_offline(
    tmp_path: Path, gallery_key: bytes
) -> None:
    """SIGKILL cannot announce anything: the broker's last will must flip availability offline."""
    broker = Broker(tmp_path / "mq")
    broker.start()
    save_gallery(tmp_path / "gallery.bin", gallery_key, make_gallery(version=1))
    config = gate_config(
        tmp_path,
        port=broker.port,
        source={"kind": "folder", "target": str(tmp_path / "no-frames")},
        key_file=tmp_path / "gallery.key",
        gallery_path=tmp_path / "gallery.bin",
    )
    log = tmp_path / "gate.log"
    collector = _collector(broker.port, f"{GATE}/availability")
    proc = _spawn(config, log)
    try:
        collector.wait_for(lambda m: len(m) >= 1, timeout=20)
        assert [s.state for s in _availability(collector)] == ["online"], log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        collector.wait_for(lambda m: len(m) >= 2, timeout=10)
        assert [s.state for s in _availability(collector)] == ["online", "offline"]
        assert _retained_availability(broker.port) == "offline"
    finally:
        _stop_process(proc)
        collector.stop()
        broker.stop()
