"""Enrolment with consent and erasure: real photos through the real face models, a real SQLite
file, a real mosquitto carrying the gallery updates, and the REST routes over them."""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts.access import Direction, GateInfo, Person, PersonKind, PersonStatus, may_use_gate
from contracts.gallery import Gallery
from contracts.gallery_crypto import GalleryKeyError, decrypt_gallery
from contracts.models import GalleryAck, GalleryUpdate
from contracts.settings import Secret
from faces.engine import DlibFaceEngine, photo_engine
from faces.images import read_image
from gateway.api import create_app
from gateway.api.deps import current_user
from gateway.api.routes.enrolment import router
from gateway.auth.roles import CurrentUser, Role
from gateway.config import EnrolmentSettings, GatewayConfig, SigningSettings
from gateway.db import migrate, open_engine, session_factory
from gateway.db.schema import (
    Consent,
    EnrolmentPhoto,
    Erasure,
    FaceTemplate,
    GalleryDelivery,
    GalleryVersion,
    Gate,
)
from gateway.db.schema import Person as PersonRow
from gateway.enrolment.consent import FACE_ACCESS
from gateway.enrolment.errors import ConsentRequiredError, FaceOptedOutError, PersonNotFoundError
from gateway.enrolment.sealing import SealedDataError, decrypt_photo, decrypt_template
from gateway.enrolment.service import EnrolmentService
from gateway.services import Services
from tests.broker import Broker, Collector
from tests.gatekit import write_key
from tests.keys import TEST_SIGNER, signing_config

# --- helpers shared with test_enrolment_gate.py ----------------------------------------------


class ManualClock:
    """A UTC clock the test moves forward."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class BrokerPublisher:
    """The gateway's Publisher contract over paho: returns once the broker has the message
    (PUBACK), raises ConnectionError when it cannot have it; reconnects on its own."""

    def __init__(self, port: int) -> None:
        self._connected = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"gw-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.on_connect = lambda *a: self._connected.set()
        self._client.on_disconnect = lambda *a: self._connected.clear()
        self._client.reconnect_delay_set(1, 2)
        self._port = port

    def start(self, wait_s: float = 10.0) -> BrokerPublisher:
        self._client.connect_async("127.0.0.1", self._port)
        self._client.loop_start()
        self._connected.wait(wait_s)
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        if not self._connected.is_set():
            raise ConnectionError("not connected to the MQTT broker")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish refused: {paho.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout=10)
        except (ValueError, RuntimeError) as exc:
            raise ConnectionError(f"publish failed: {exc}") from exc
        if not info.is_published():
            raise ConnectionError("the broker did not acknowledge the publish")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@dataclass
class World:
    """An enrolment service over a real SQLite file, for one site of its own."""

    service: EnrolmentService
    sessions: sessionmaker[Session]
    clock: ManualClock
    site: str
    gallery_key: bytes
    template_key: bytes
    db_path: Path
    settings: EnrolmentSettings

    def add_gate(self, building: str, gate_id: str, direction: str = "in") -> str:
        key = f"{self.site}/{building}/{gate_id}"
        with self.sessions.begin() as session:
            session.add(
                Gate(
                    gate_key=key,
                    site=self.site,
                    building=building,
                    gate_id=gate_id,
                    direction=direction,
                )
            )
        return key

    def add_person(self, person_id: str, **fields: Any) -> None:
        now = self.clock()
        values: dict[str, Any] = {
            "buildings": ["b1"],
            "gates": [],
            "windows": [],
            "cards": [],
            "created_at": now,
            "updated_at": now,
        }
        values.update(fields)
        with self.sessions.begin() as session:
            session.add(PersonRow(person_id=person_id, **values))

    def consent(self, person_id: str, granted: bool = True) -> None:
        self.service.record_consent(person_id, FACE_ACCESS, granted, "signed form #12", "admin")

    def db_bytes(self) -> bytes:
        """Everything SQLite holds on disk: the database file and its write-ahead log."""
        files = [self.db_path, self.db_path.with_name(self.db_path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())


_ENGINE: DlibFaceEngine | None = None


def face_engine() -> DlibFaceEngine:
    """One real dlib engine per test process (the models load once)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = photo_engine()
        _ENGINE.start()
    return _ENGINE


def make_world(tmp: Path, publisher: Any, *, site: str | None = None, **settings: Any) -> World:
    site = site or f"t{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True, exist_ok=True)
    gallery_key = write_key(tmp / "gallery.key")
    template_key = write_key(tmp / "template.key")
    enrolment = EnrolmentSettings(
        gallery_key=Secret(file=tmp / "gallery.key"),
        template_key=Secret(file=tmp / "template.key"),
        **settings,
    )
    db_path = tmp / "gateway.db"
    engine = open_engine(f"sqlite:///{db_path}")
    migrate(engine)
    sessions = session_factory(engine)
    clock = ManualClock()
    service = EnrolmentService(
        sessions,
        clock,
        enrolment,
        site,
        face_engine(),
        publisher,
        gallery_key,
        template_key,
        retry_after_s=0.0,
        signer=TEST_SIGNER,
    )
    service.start()
    return World(service, sessions, clock, site, gallery_key, template_key, db_path, enrolment)


def photo_bytes(photos: Path, name: str) -> tuple[str, bytes]:
    return name, (photos / name).read_bytes()


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return bytes(data.tobytes())


def gallery_updates(collector: Collector) -> dict[str, GalleryUpdate]:
    """The newest gallery update per topic."""
    newest: dict[str, GalleryUpdate] = {}
    for topic, payload, _ in collector.snapshot():
        update = GalleryUpdate.model_validate_json(payload)
        if topic not in newest or update.version >= newest[topic].version:
            newest[topic] = update
    return newest


def open_update(update: GalleryUpdate, key: bytes) -> Gallery:
    return decrypt_gallery(base64.b64decode(update.blob_b64), key)


def gallery_topic(site: str, building: str, gate_id: str) -> str:
    return f"dorm/{site}/{building}/gate/{gate_id}/gallery"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def publisher(broker: Broker) -> Iterator[BrokerPublisher]:
    pub = BrokerPublisher(broker.port).start()
    yield pub
    pub.stop()


@pytest.fixture
def world(tmp_path: Path, publisher: BrokerPublisher) -> World:
    w = make_world(tmp_path, publisher)
    w.add_gate("b1", "g1")
    w.add_person("s-obama")
    return w


@pytest.fixture
def collector(world: World, broker: Broker) -> Iterator[Collector]:
    c = Collector(
        broker.port, f"dorm/{world.site}/+/gate/+/gallery", client_id=f"c-{uuid.uuid4().hex[:8]}"
    ).start()
    yield c
    c.stop()


# --- consent and opt-out ---------------------------------------------------------------------


@dataclass
class Outage:
    """A broker of the test's own, to stop and restart, and a world using it with one gate and
    one person who granted face consent."""

    broker: Broker
    publisher: BrokerPublisher
    world: World


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    own = Broker(tmp_path / "mosquitto")
    own.start()
    pub = BrokerPublisher(own.port).start()
    w = make_world(tmp_path, pub)
    w.add_gate("b1", "g1")
    w.add_person("s-obama")
    w.consent("s-obama")
    try:
        yield Outage(own, pub, w)
    finally:
        pub.stop()
        own.stop()


def test_enrolment_is_refused_without_granted_face_access_consent(
    world: World, photos: Path
) -> None:
    with pytest.raises(ConsentRequiredError, match="has not been recorded"):
        world.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    world.service.record_consent("s-obama", "photo_badge", True, "", "admin")
    with pytest.raises(ConsentRequiredError):
        world.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    world.consent("s-obama")
    report = world.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    assert (report.accepted, report.templates_total) == (1, 1)
    world.consent("s-obama", granted=False)
    with pytest.raises(ConsentRequiredError, match="was withdrawn"):
        world.service.enrol("s-obama", [photo_bytes(photos, "obama2.jpg")], "admin")


def test_person_who_opted_out_of_face_recognition_is_never_enrolled(
    world: World, photos: Path
) -> None:
    """Face must never be the only way in: an opt-out means card or PIN, even with consent."""
    world.add_person("s-card-only", face_opt_out=True, cards=["04A1B2C3"])
    world.consent("s-card-only")
    with pytest.raises(FaceOptedOutError, match="card or PIN"):
        world.service.enrol("s-card-only", [photo_bytes(photos, "obama.jpg")], "admin")
    with world.sessions() as session:
        assert session.scalars(select(FaceTemplate)).all() == []


def test_unknown_person_cannot_be_enrolled_or_given_consent(world: World, photos: Path) -> None:
    with pytest.raises(PersonNotFoundError, match="nobody"):
        world.service.record_consent("nobody", FACE_ACCESS, True, "", "admin")
    with pytest.raises(PersonNotFoundError):
        world.service.enrol("nobody", [photo_bytes(photos, "obama.jpg")], "admin")


# --- photo checks ----------------------------------------------------------------------------


def test_each_bad_photo_gets_its_own_error_naming_the_file_and_good_ones_are_enrolled(
    tmp_path: Path, publisher: BrokerPublisher, photos: Path
) -> None:
    w = make_world(tmp_path, publisher, max_photo_bytes=500_000)
    w.add_person("s-obama")
    w.consent("s-obama")
    obama = read_image(str(photos / "obama.jpg"))
    biden = read_image(str(photos / "biden.jpg"))

    def at_height(image: np.ndarray, height: int) -> np.ndarray:
        return cv2.resize(image, (int(image.shape[1] * height / image.shape[0]), height))

    batch = [
        photo_bytes(photos, "obama.jpg"),
        ("broken.jpg", b"\xff\xd8\xff\xe0 this is not really a JPEG"),
        ("empty.png", b""),
        ("wall.png", jpeg(np.full((480, 640, 3), 128, dtype=np.uint8))),
        ("two.jpg", jpeg(np.hstack([at_height(obama, 600), at_height(biden, 600)]))),
        ("tiny.jpg", jpeg(cv2.resize(obama, None, fx=0.25, fy=0.25))),
        ("blurred.jpg", jpeg(cv2.GaussianBlur(obama, (0, 0), 5))),
        photo_bytes(photos, "obama3.jpg"),  # 596 kB, over the 500 kB limit
        ("again.jpg", (photos / "obama.jpg").read_bytes()),
    ]
    report = w.service.enrol("s-obama", batch, "admin")
    by_name = {p.name: p for p in report.photos}
    assert [p.name for p in report.photos] == [name for name, _ in batch]
    assert (report.accepted, report.rejected, report.templates_total) == (1, 8, 1)

    good = by_name["obama.jpg"]
    assert good.ok and good.error is None and good.template_id is not None
    assert good.faces == 1 and good.face_px is not None and good.face_px >= 80
    assert good.sharpness is not None and good.sharpness > 20
    assert (good.width, good.height) == (910, 1137)

    expected = {
        "broken.jpg": "broken.jpg: not a decodable image",
        "empty.png": "empty.png: empty file",
        "wall.png": "wall.png: 0 faces found, exactly one needed",
        "two.jpg": "two.jpg: 2 faces found, exactly one needed",
        "tiny.jpg": "tiny.jpg: face too small",
        "blurred.jpg": "blurred.jpg: face too blurred",
        "obama3.jpg": "obama3.jpg: larger than the limit of 500000 bytes",
        "again.jpg": "again.jpg: this photo is already enrolled",
    }
    for name, message in expected.items():
        result = by_name[name]
        assert not result.ok and result.template_id is None
        assert result.error is not None and result.error.startswith(message), result.error
    assert by_name["two.jpg"].faces == 2
    assert by_name["tiny.jpg"].face_px is not None and by_name["tiny.jpg"].face_px < 80


# --- storage ---------------------------------------------------------------------------------


def test_templates_are_stored_encrypted_and_bound_to_their_person(
    world: World, photos: Path
) -> None:
    world.consent("s-obama")
    world.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    engine = face_engine()
    detection = engine.detect(read_image(str(photos / "obama.jpg")))
    encoding = engine.encode(detection.rgb, detection.boxes[:1])[0].astype("<f4")

    on_disk = world.db_bytes()
    assert encoding.tobytes() not in on_disk
    assert encoding[:4].tobytes() not in on_disk  # not even a fragment of it
    with world.sessions() as session:
        (row,) = session.scalars(select(FaceTemplate)).all()
    assert row.template_enc.startswith(b"DGT1")
    assert np.array_equal(
        decrypt_template(row.template_enc, "s-obama", world.template_key), encoding
    )
    with pytest.raises(SealedDataError, match="wrong key"):
        decrypt_template(row.template_enc, "s-obama", world.gallery_key)
    with pytest.raises(SealedDataError, match="wrong person"):
        decrypt_template(row.template_enc, "s-other", world.template_key)


def test_logs_carry_ids_and_counts_but_never_face_data(
    world: World, photos: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world.consent("s-obama")
    with caplog.at_level(logging.DEBUG):
        world.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
        world.service.erase("s-obama", "admin")
    with world.sessions() as session:
        assert session.scalars(select(FaceTemplate)).all() == []
    assert "s-obama" in caplog.text
    assert max(len(r.getMessage()) for r in caplog.records) < 500  # no blob fits in a line
    detection = face_engine().detect(read_image(str(photos / "obama.jpg")))
    encoding = face_engine().encode(detection.rgb, detection.boxes[:1])[0].astype("<f4")
    assert base64.b64encode(encoding.tobytes())[:16].decode() not in caplog.text
    assert f"{float(encoding[0]):.4f}" not in caplog.text


def test_photos_are_not_kept_by_default(world: World, photos: Path) -> None:
    world.consent("s-obama")
    data = (photos / "obama.jpg").read_bytes()
    world.service.enrol("s-obama", [("obama.jpg", data)], "admin")
    with world.sessions() as session:
        assert session.scalars(select(EnrolmentPhoto)).all() == []
    assert data[5000:5064] not in world.db_bytes()
    assert world.service.status("s-obama").photos_kept == 0


def test_kept_photos_are_encrypted_and_purged_after_the_retention(
    tmp_path: Path, publisher: BrokerPublisher, photos: Path
) -> None:
    w = make_world(tmp_path, publisher, keep_photos=True, photo_retention_days=7)
    w.add_person("s-obama")
    w.consent("s-obama")
    data = (photos / "obama.jpg").read_bytes()
    w.service.enrol("s-obama", [("obama.jpg", data)], "admin")
    with w.sessions() as session:
        (kept,) = session.scalars(select(EnrolmentPhoto)).all()
    assert kept.expires_at == w.clock() + timedelta(days=7)
    assert data[5000:5064] not in w.db_bytes()
    assert decrypt_photo(kept.photo_enc, "s-obama", w.template_key) == data

    w.clock.advance(days=7, seconds=-1)
    assert w.service.purge_expired_photos() == 0
    w.clock.advance(seconds=1)
    assert w.service.purge_expired_photos() == 1
    assert w.service.status("s-obama").photos_kept == 0
    assert w.service.status("s-obama").templates == 1  # retention is about photos only


# --- galleries on the broker -----------------------------------------------------------------


def test_each_gate_gets_a_retained_encrypted_gallery_of_only_the_people_allowed_there(
    world: World, collector: Collector, broker: Broker, photos: Path
) -> None:
    w = world
    w.add_gate("b1", "g2")
    w.add_gate("b1", "exit", direction="out")
    w.add_gate("b2", "g1")
    past = w.clock() - timedelta(days=1)
    w.add_person("s-g2-only", gates=["g2"], cards=["04:a1:b2:c3"])
    w.add_person("s-b2", buildings=["b2"])
    w.add_person("s-graduated", status="graduated")
    w.add_person("v-expired", kind="visitor", valid_until=past)
    w.add_person("s-card", face_opt_out=True, cards=["0BADC0DE"])
    w.add_person("s-night", windows=[{"days": [0, 1], "start": "22:00", "end": "06:00"}])
    w.add_person("s-broken", windows=[{"start": "7 am", "end": "23:00"}])
    w.consent("s-obama")

    report = w.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    assert report.publication is not None
    version = report.publication.version
    assert sorted(report.publication.delivered) == sorted(
        f"{w.site}/{k}" for k in ("b1/g1", "b1/g2", "b1/exit", "b2/g1")
    )
    assert any("s-broken" in p and "7 am" in p for p in report.publication.problems)

    msgs = collector.wait_for(lambda m: len(m) >= 4)
    updates = gallery_updates(collector)
    assert sorted(updates) == sorted(
        gallery_topic(w.site, b, g)
        for b, g in (("b1", "g1"), ("b1", "g2"), ("b1", "exit"), ("b2", "g1"))
    )
    assert all(retained is False for _, _, retained in msgs)  # live delivery to a subscriber
    galleries = {topic: open_update(u, w.gallery_key) for topic, u in updates.items()}
    assert {g.version for g in galleries.values()} == {version}
    assert {u.version for u in updates.values()} == {version}

    entry = galleries[gallery_topic(w.site, "b1", "g1")]
    assert sorted(entry.people) == ["s-card", "s-night", "s-obama"]
    assert entry.template_owners == ("s-obama",)
    with w.sessions() as session:
        (row,) = session.scalars(select(FaceTemplate)).all()
    stored = decrypt_template(row.template_enc, "s-obama", w.template_key)
    assert np.array_equal(entry.encodings[0], stored)
    night = entry.people["s-night"].windows[0]
    assert (night.days, night.start.hour, night.end.hour) == (frozenset({0, 1}), 22, 6)

    assert sorted(galleries[gallery_topic(w.site, "b1", "g2")].people) == [
        "s-card",
        "s-g2-only",
        "s-night",
        "s-obama",
    ]
    assert galleries[gallery_topic(w.site, "b1", "g2")].people["s-g2-only"].card_uids == {
        "04A1B2C3"
    }
    # Exits let every known person of the building out, whatever their status or pass.
    assert sorted(galleries[gallery_topic(w.site, "b1", "exit")].people) == [
        "s-card",
        "s-graduated",
        "s-night",
        "s-obama",
        "v-expired",
    ]
    other = galleries[gallery_topic(w.site, "b2", "g1")]
    assert (sorted(other.people), other.template_owners) == (["s-b2"], ())

    with pytest.raises(GalleryKeyError):
        decrypt_gallery(
            base64.b64decode(updates[gallery_topic(w.site, "b1", "g1")].blob_b64), w.template_key
        )

    late = Collector(broker.port, gallery_topic(w.site, "b1", "g1"), client_id="late").start()
    try:
        retained = late.wait_for(lambda m: len(m) >= 1)
        assert [r for _, _, r in retained] == [True]
        assert GalleryUpdate.model_validate_json(retained[0][1]).version == version
    finally:
        late.stop()
    with w.sessions() as session:
        deliveries = session.scalars(select(GalleryDelivery)).all()
        assert {(d.version, d.error, d.acked_at) for d in deliveries} == {(version, None, None)}
        assert session.get(GalleryVersion, version) is not None
    assert {d.state for d in w.service.status("s-obama").deliveries} == {"sent"}


def test_broker_outage_keeps_deliveries_pending_until_retry_sends_them(
    outage: Outage, photos: Path
) -> None:
    own, pub, w = outage.broker, outage.publisher, outage.world
    own.stop()
    report = w.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    assert report.accepted == 1
    assert report.publication is not None
    assert report.publication.delivered == ()
    assert report.publication.pending == (f"{w.site}/b1/g1",)
    (delivery,) = w.service.deliveries()
    assert delivery.state == "pending"
    assert delivery.error is not None and "not connected" in delivery.error
    assert w.service.retry_pending() == 0  # still down: stays pending

    own.start()
    assert pub.wait_connected(10)
    collector = Collector(own.port, f"dorm/{w.site}/#", client_id="outage").start()
    try:
        assert w.service.retry_pending() == 1
        (delivery,) = w.service.deliveries()
        assert (delivery.state, delivery.error) == ("sent", None)
        msgs = collector.wait_for(lambda m: len(m) >= 1)
        gallery = open_update(GalleryUpdate.model_validate_json(msgs[0][1]), w.gallery_key)
        assert gallery.template_owners == ("s-obama",)
        assert w.service.retry_pending() == 0  # sent: not re-sent until the resend interval
    finally:
        collector.stop()


# --- erasure ---------------------------------------------------------------------------------


def _ack(update: GalleryUpdate, *, applied: bool = True, version: int | None = None) -> GalleryAck:
    return GalleryAck(
        producer="gate",
        correlation_id=update.correlation_id,
        version=update.version if version is None else version,
        applied=applied,
        error=None if applied else "wrong key or tampered gallery file blob",
    )


def test_erasure_deletes_face_data_and_completes_only_when_every_gate_confirmed(
    world: World, collector: Collector, photos: Path
) -> None:
    w = world
    w.add_gate("b1", "g2")
    w.consent("s-obama")
    w.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    collector.wait_for(lambda m: len(m) >= 2)

    report = w.service.erase("s-obama", "admin")
    assert (report.templates_deleted, report.photos_deleted) == (1, 0)
    version = report.erasure.gallery_version
    assert version == report.publication.version
    assert report.erasure.pending
    assert sorted(report.erasure.unconfirmed_gates) == [f"{w.site}/b1/g1", f"{w.site}/b1/g2"]
    with w.sessions() as session:
        assert session.scalars(select(FaceTemplate)).all() == []
        row = session.get(GalleryVersion, version)
        assert row is not None and row.erased_person_ids == ["s-obama"]

    collector.wait_for(lambda m: len(m) >= 4)
    updates = gallery_updates(collector)
    g1 = updates[gallery_topic(w.site, "b1", "g1")]
    g2 = updates[gallery_topic(w.site, "b1", "g2")]
    assert g1.version == g2.version == version
    erased = open_update(g1, w.gallery_key)
    assert erased.template_owners == ()
    assert "s-obama" in erased.people  # still admitted by card or PIN, no longer by face

    w.service.on_gallery_ack(f"{w.site}/b1/g1", _ack(g1))
    w.service.on_gallery_ack(f"{w.site}/b1/g2", _ack(g2, applied=False, version=version - 1))
    (pending,) = w.service.status("s-obama").pending_erasures
    assert pending.unconfirmed_gates == (f"{w.site}/b1/g2",)
    states = {d.gate_key: d.state for d in w.service.status("s-obama").deliveries}
    assert states == {f"{w.site}/b1/g1": "applied", f"{w.site}/b1/g2": "refused"}

    w.service.on_gallery_ack(f"{w.site}/b1/g1", _ack(g2))  # another gate's delivery: ignored
    assert len(w.service.status("s-obama").pending_erasures) == 1

    w.service.on_gallery_ack(f"{w.site}/b1/g2", _ack(g2))
    status = w.service.status("s-obama")
    assert status.pending_erasures == ()
    (done,) = status.erasures
    assert done.completed_at == w.clock() and done.unconfirmed_gates == ()


def test_withdrawing_face_consent_erases_the_face_data(
    world: World, collector: Collector, photos: Path
) -> None:
    world.consent("s-obama")
    world.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    result = world.service.record_consent("s-obama", FACE_ACCESS, False, "email 3 May", "admin")
    assert result.erasure is not None
    assert result.erasure.templates_deleted == 1
    status = world.service.status("s-obama")
    assert (status.templates, status.face_consent) == (0, False)
    assert [(c.granted, c.withdrawn_at is not None) for c in status.consents] == [
        (True, True),
        (False, False),
    ]
    assert len(status.pending_erasures) == 1
    collector.wait_for(lambda m: len(m) >= 2)
    newest = gallery_updates(collector)[gallery_topic(world.site, "b1", "g1")]
    assert open_update(newest, world.gallery_key).template_owners == ()


def test_refusing_consent_that_was_never_granted_records_it_without_an_erasure(
    world: World,
) -> None:
    result = world.service.record_consent("s-obama", FACE_ACCESS, False, "", "admin")
    assert result.erasure is None
    with world.sessions() as session:
        assert session.scalars(select(Erasure)).all() == []
        assert len(session.scalars(select(Consent)).all()) == 1


def test_erasure_without_broker_is_never_lost_and_is_sent_by_retry(
    outage: Outage, photos: Path
) -> None:
    own, pub, w = outage.broker, outage.publisher, outage.world
    w.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    own.stop()
    report = w.service.erase("s-obama", "admin")
    assert report.publication.pending == (f"{w.site}/b1/g1",)
    own.start()
    assert pub.wait_connected(10)
    collector = Collector(own.port, f"dorm/{w.site}/#", client_id="erasure").start()
    try:
        assert w.service.retry_pending() == 1
        msgs = collector.wait_for(lambda m: len(m) >= 1)
        update = GalleryUpdate.model_validate_json(msgs[-1][1])
        assert update.version == report.erasure.gallery_version
        assert open_update(update, w.gallery_key).template_owners == ()
        w.service.on_gallery_ack(f"{w.site}/b1/g1", _ack(update))
        assert w.service.status("s-obama").pending_erasures == ()
    finally:
        collector.stop()


def test_retry_serves_new_gates_resends_silent_ones_and_outbids_a_newer_foreign_version(
    world: World, collector: Collector, photos: Path
) -> None:
    w = world
    w.consent("s-obama")
    report = w.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    assert report.publication is not None
    version = report.publication.version
    assert w.service.retry_pending() == 0

    late_gate = w.add_gate("b1", "g7")  # seen by ingest after the publication
    assert w.service.retry_pending() == 1
    collector.wait_for(lambda m: len(m) >= 2)
    update = gallery_updates(collector)[gallery_topic(w.site, "b1", "g7")]
    assert update.version == version
    assert open_update(update, w.gallery_key).template_owners == ("s-obama",)

    # g1 stays silent: re-published once the resend interval has passed (the broker may have
    # lost its retained messages).
    w.service.on_gallery_ack(late_gate, _ack(update))
    w.clock.advance(seconds=299)
    assert w.service.retry_pending() == 0
    w.clock.advance(seconds=1)
    assert w.service.retry_pending() == 1
    collector.wait_for(lambda m: len(m) >= 3)

    # g1 holds version 40 from an offline build and refuses ours as older.
    g1 = gallery_updates(collector)[gallery_topic(w.site, "b1", "g1")]
    w.service.on_gallery_ack(
        f"{w.site}/b1/g1",
        GalleryAck(
            producer="gate",
            correlation_id=g1.correlation_id,
            version=40,
            applied=False,
            error=f"version {version} is older than version 40 in use",
        ),
    )
    assert w.service.retry_pending() == 2
    collector.wait_for(lambda m: len(m) >= 5)
    assert {u.version for u in gallery_updates(collector).values()} == {41}


# --- the pure gallery rule -------------------------------------------------------------------

_NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
_ENTRY = GateInfo("s", "b1", "g1", Direction.IN)
_EXIT = GateInfo("s", "b1", "g9", Direction.OUT)


@pytest.mark.parametrize(
    ("person", "gate", "expected"),
    [
        (Person("a", buildings=frozenset({"b1"})), _ENTRY, True),
        (Person("a", buildings=frozenset({"b2"})), _ENTRY, False),
        (Person("a", buildings=frozenset()), _EXIT, False),
        (Person("a", buildings=frozenset({"b1"}), gates=frozenset({"g2"})), _ENTRY, False),
        (Person("a", buildings=frozenset({"b1"}), gates=frozenset({"g1"})), _ENTRY, True),
        (Person("a", status=PersonStatus.SUSPENDED, buildings=frozenset({"b1"})), _ENTRY, True),
        (Person("a", status=PersonStatus.GRADUATED, buildings=frozenset({"b1"})), _ENTRY, False),
        (Person("a", status=PersonStatus.GRADUATED, buildings=frozenset({"b1"})), _EXIT, True),
        (Person("a", buildings=frozenset({"b1"}), valid_until=_NOW), _ENTRY, False),
        (Person("a", buildings=frozenset({"b1"}), valid_from=_NOW + timedelta(1)), _ENTRY, True),
        (Person("v", kind=PersonKind.VISITOR, buildings=frozenset({"b1"})), _ENTRY, False),
        (
            Person(
                "v",
                kind=PersonKind.VISITOR,
                buildings=frozenset({"b1"}),
                valid_until=_NOW + timedelta(hours=1),
            ),
            _ENTRY,
            True,
        ),
    ],
)
def test_a_gate_gallery_holds_whoever_that_gate_could_ever_admit(
    person: Person, gate: GateInfo, expected: bool
) -> None:
    assert may_use_gate(person, gate, _NOW) is expected


# --- REST routes -----------------------------------------------------------------------------


def _services(world: World | None, tmp: Path) -> Services:
    engine = open_engine(f"sqlite:///{tmp / 'api.db'}")
    return Services(
        config=GatewayConfig(
            site=world.site if world else "campus1",
            enrolment=world.settings if world else None,
            command_signing=SigningSettings.model_validate(signing_config()),
        ),
        engine=engine,
        sessions=world.sessions if world else session_factory(engine),
        clock=world.clock if world else ManualClock(),
        alerts=None,  # type: ignore[arg-type]  # not used by these routes
        series_writer=None,  # type: ignore[arg-type]
        series_reader=None,  # type: ignore[arg-type]
        enrolment=world.service if world else None,
    )


def _app(world: World | None, tmp: Path, role: Role = Role.ADMIN) -> FastAPI:
    """The enrolment router alone on a bare app, the caller's role given by an override."""
    app = FastAPI()
    app.include_router(router)
    app.state.services = _services(world, tmp)
    app.dependency_overrides[current_user] = lambda: CurrentUser(1, role.value, role)
    return app


def test_create_app_mounts_the_enrolment_routes_behind_a_token(
    world: World, tmp_path: Path
) -> None:
    app = create_app(_services(world, tmp_path))
    client = TestClient(app)
    assert client.get("/api/gallery/deliveries").status_code == 401
    assert client.delete("/api/people/s-obama/face").status_code == 401
    app.dependency_overrides[current_user] = lambda: CurrentUser(2, "audit", Role.AUDITOR)
    assert client.get("/api/gallery/deliveries").status_code == 200
    assert client.delete("/api/people/s-obama/face").status_code == 403


def test_routes_answer_503_when_enrolment_is_not_configured(tmp_path: Path) -> None:
    client = TestClient(_app(None, tmp_path))
    response = client.get("/api/gallery/deliveries")
    assert response.status_code == 503
    assert "enrolment is not configured" in response.json()["detail"]


def test_routes_enrol_report_per_photo_and_erase(
    world: World, tmp_path: Path, photos: Path
) -> None:
    client = TestClient(_app(world, tmp_path))
    files = [("files", ("obama.jpg", (photos / "obama.jpg").read_bytes(), "image/jpeg"))]

    refused = client.post("/api/people/s-obama/photos", files=files)
    assert refused.status_code == 409
    assert "consent" in refused.json()["detail"]

    consent = client.post(
        "/api/people/s-obama/consent", json={"granted": True, "evidence": "form 7"}
    )
    assert consent.status_code == 200
    assert consent.json()["consent"]["recorded_by"] == "admin"

    bad = client.post(
        "/api/people/s-obama/photos",
        files=[("files", ("C:\\phone\\broken.jpg", b"not an image", "image/jpeg"))],
    )
    assert bad.status_code == 422
    assert "broken.jpg: not a decodable image" in bad.json()["detail"]["message"]
    assert bad.json()["detail"]["photos"][0]["name"] == "broken.jpg"

    mixed = client.post(
        "/api/people/s-obama/photos",
        files=[*files, ("files", ("notes.txt", b"hello", "text/plain"))],
    )
    assert mixed.status_code == 200
    body = mixed.json()
    assert (body["accepted"], body["rejected"], body["templates_total"]) == (1, 1, 1)
    assert body["photos"][1]["error"].startswith("notes.txt: not a decodable image")
    assert body["publication"]["delivered"] == [f"{world.site}/b1/g1"]

    status = client.get("/api/people/s-obama/enrolment").json()
    assert (status["templates"], status["face_consent"], status["pending_erasures"]) == (1, True, 0)
    assert [d["state"] for d in status["deliveries"]] == ["sent"]
    deliveries = client.get("/api/gallery/deliveries").json()
    assert [(d["gate_key"], d["state"]) for d in deliveries] == [(f"{world.site}/b1/g1", "sent")]

    erased = client.delete("/api/people/s-obama/face")
    assert erased.status_code == 202
    assert erased.json()["templates_deleted"] == 1
    assert erased.json()["erasure"]["unconfirmed_gates"] == [f"{world.site}/b1/g1"]
    assert client.get("/api/people/nobody/enrolment").status_code == 404
    assert client.delete("/api/people/nobody/face").status_code == 404


def test_auditors_may_read_enrolment_state_but_not_change_it(
    world: World, tmp_path: Path, photos: Path
) -> None:
    client = TestClient(_app(world, tmp_path, Role.AUDITOR))
    assert client.get("/api/people/s-obama/enrolment").status_code == 200
    assert client.get("/api/gallery/deliveries").status_code == 200
    files = [("files", ("obama.jpg", (photos / "obama.jpg").read_bytes(), "image/jpeg"))]
    assert client.post("/api/people/s-obama/photos", files=files).status_code == 403
    assert client.post("/api/people/s-obama/consent", json={"granted": True}).status_code == 403
    assert client.delete("/api/people/s-obama/face").status_code == 403
    guard = TestClient(_app(world, tmp_path, Role.GUARD))
    assert guard.get("/api/people/s-obama/enrolment").status_code == 403


def test_opting_out_of_face_through_the_people_api_erases_the_templates(
    world: World, tmp_path: Path, photos: Path
) -> None:
    """A student who switches to card/PIN has their templates erased and the gates told."""
    from gateway.api.routes.people import router as people_router

    world.consent("s-obama")
    world.service.enrol("s-obama", [photo_bytes(photos, "obama.jpg")], "admin")
    app = _app(world, tmp_path)
    app.include_router(people_router)
    response = TestClient(app).patch("/api/people/s-obama", json={"face_opt_out": True})
    assert response.status_code == 200, response.text
    assert response.json()["face_enrolled"] is False
    with world.sessions() as session:
        assert session.scalars(select(FaceTemplate)).all() == []
    (erasure,) = world.service.status("s-obama").erasures
    assert erasure.unconfirmed_gates  # pending until the gate acknowledges the new version


def test_an_admin_can_republish_every_gate_gallery_signed_by_the_current_key(
    world: World, tmp_path: Path, collector: Collector
) -> None:
    """Step 3 of a signing-key rotation: POST /api/gallery/publish sends a new version, and what
    reaches the broker is signed for that gate's topic by the gateway's key."""
    from contracts.signing import MessageVerifier

    client = TestClient(_app(world, tmp_path))
    done = client.post("/api/gallery/publish", json={"reason": "signing key rotated"})
    assert done.status_code == 202, done.text
    body = done.json()
    assert body["delivered"] == [f"{world.site}/b1/g1"]
    topic = f"dorm/{world.site}/b1/gate/g1/gallery"
    messages = collector.wait_for(lambda m: any(t == topic for t, _, _ in m))
    (payload,) = [p for t, p, _ in messages if t == topic]
    verified = MessageVerifier.from_texts([TEST_SIGNER.public_key]).verify(topic, payload)
    assert verified.key_id == TEST_SIGNER.key_id
    assert GalleryUpdate.model_validate_json(payload).version == body["version"]
    assert client.post("/api/gallery/publish", json={"reason": ""}).status_code == 422
