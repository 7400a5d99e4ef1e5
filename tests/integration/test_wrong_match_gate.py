"""End to end: "this is not X" from the API to a real gate, and the same probe denied after.

Everything is real: mosquitto, a `dormguard gate` process with the real face models looking at
real photos, the gateway (ingest, enrolment, commands, API) in this process on SQLite files.
Person X (s-obama) is enrolled from obama.jpg. The gate runs with a loosened tolerance (0.9), so
biden.jpg, a different real person 0.84 away, is let in as X: the wrong match a guard reports.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import cv2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from contracts.gallery_crypto import decrypt_gallery, load_key
from gateway.api import create_app
from gateway.app import Gateway, build_gateway
from gateway.auth.roles import Role
from gateway.config import GatewayConfig
from gateway.db.schema import AccessRecord, GateCommand, ImpostorExample, WrongMatchReport
from tests.broker import Broker
from tests.gatekit import gate_config, spawn_gate, stop_process, write_key
from tests.gatewaykit import add_person, login
from tests.gatewayproc import BUILDING, GATE, SITE, gateway_config
from tests.photos import gate_frame

pytestmark = [pytest.mark.slow, pytest.mark.broker]

PERSON = "s-obama"
GATE_KEY = f"{SITE}/{BUILDING}/{GATE}"
T = TypeVar("T")


def wait_for(find: Callable[[], T | None], what: str, log: Path, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; gate log:\n{log.read_text()[-4000:]}")


def show(camera: Path, photo: Path) -> None:
    """Put one person in front of the camera (the folder source re-lists every pass)."""
    staged = camera.parent / f"{photo.stem}.staged.jpg"
    cv2.imwrite(str(staged), gate_frame(photo))
    for old in camera.iterdir():
        old.unlink()
    os.replace(staged, camera / photo.name)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Gateway, Broker]]:
    broker = Broker(tmp_path / "mosquitto")
    broker.start()
    keys = tmp_path / "keys"
    keys.mkdir()
    write_key(keys / "gallery.key")
    write_key(keys / "template.key")
    raw: dict[str, Any] = gateway_config(tmp_path / "gw", broker.port)
    raw["enrolment"] = {
        "gallery_key": {"file": str(keys / "gallery.key")},
        "template_key": {"file": str(keys / "template.key")},
    }
    (tmp_path / "gw").mkdir()
    gw = build_gateway(GatewayConfig.model_validate(raw))
    gw.start(wait_broker_s=10)
    try:
        yield gw, broker
    finally:
        gw.stop()
        broker.stop()


def test_a_reported_wrong_match_reaches_the_gate_and_the_same_probe_is_then_denied(
    tmp_path: Path, photos: Path, site: tuple[Gateway, Broker]
) -> None:
    """Biden is let in as s-obama; a guard reports it; the gate hands over the probe, the next
    gallery carries it as s-obama's impostor example, and Biden is now refused (wrong_match)
    while another photo of Obama still opens the door. Erasing s-obama removes the example
    from the database and from the gallery the gate holds."""
    gw, broker = site
    services = gw.services
    assert services.enrolment is not None
    camera = tmp_path / "camera"
    camera.mkdir()
    show(camera, photos / "biden.jpg")
    gallery_path = tmp_path / "gate" / "gallery.bin"
    config = gate_config(
        tmp_path,
        port=broker.port,
        source={"kind": "folder", "target": str(camera), "fps": 4},
        key_file=tmp_path / "keys" / "gallery.key",
        gallery_path=gallery_path,
        site=SITE,
        matching={"tolerance": 0.9},  # loosened: Biden (0.84 from Obama) passes as Obama
        confirmation={"cooldown_s": 1.0},
    )
    log = tmp_path / "gate.log"
    proc: subprocess.Popen[bytes] | None = None
    client = TestClient(create_app(services))
    try:
        add_person(services, PERSON)
        services.enrolment.record_consent(PERSON, "face_access", True, "form 17", "admin")
        enrolled = services.enrolment.enrol(
            PERSON, [("obama.jpg", (photos / "obama.jpg").read_bytes())], "admin"
        )
        assert enrolled.publication is not None and enrolled.publication.delivered == (GATE_KEY,)
        proc = spawn_gate(config, log)

        def newest(**where: Any) -> AccessRecord | None:
            with services.sessions() as s:
                query = select(AccessRecord).order_by(AccessRecord.id.desc()).limit(1)
                for name, value in where.items():
                    query = query.where(getattr(AccessRecord, name) == value)
                return s.scalar(query)

        wrong = wait_for(
            lambda: newest(decision="granted", person_id=PERSON), "Biden granted as Obama", log
        )
        assert wrong.method == "face"

        guard = login(client, Role.GUARD)
        auditor = login(client, Role.AUDITOR)
        url = f"/api/access/{wrong.event_id}/wrong-match"
        assert client.post(url, headers=auditor, json={}).status_code == 403
        response = client.post(url, headers=guard, json={"note": "that was a visitor"})
        assert response.status_code == 202, response.text
        report = response.json()
        assert (report["state"], report["person_id"], report["gate_key"]) == (
            "requested",
            PERSON,
            GATE_KEY,
        )
        again = client.post(url, headers=guard, json={})
        assert again.status_code == 409, again.text

        def report_state() -> str | None:
            with services.sessions() as s:
                row = s.get(WrongMatchReport, report["id"])
                return None if row is None or row.state == "requested" else row.state

        assert wait_for(report_state, "the probe handed over", log) == "stored"
        page = client.get("/api/access", headers=guard, params={"person": PERSON}).json()
        (shown,) = [r for r in page["items"] if r["event_id"] == wrong.event_id]
        assert shown["wrong_match"] == "stored"
        with services.sessions() as s:
            command = s.scalar(select(GateCommand).where(GateCommand.command == "send_probe"))
            assert command is not None and command.ok is True

        def gate_gallery_has_impostor() -> bool:
            key = load_key(key_file=tmp_path / "keys" / "gallery.key", key_env=None)
            held = decrypt_gallery(gallery_path.read_bytes(), key)
            return held.impostor_owners == (PERSON,)

        wait_for(gate_gallery_has_impostor, "the gallery with the impostor example", log)
        with services.sessions() as s:
            after_gallery = s.scalar(select(func.max(AccessRecord.id))) or 0

        def denied_after() -> AccessRecord | None:
            row = newest(decision="denied", reason="wrong_match")
            return row if row is not None and row.id > after_gallery else None

        denied = wait_for(denied_after, "the same probe denied", log)
        assert denied.person_id is None  # not let in, and not counted against Obama

        show(camera, photos / "obama2.jpg")
        with services.sessions() as s:
            before_obama = s.scalar(select(func.max(AccessRecord.id))) or 0

        def obama_granted() -> AccessRecord | None:
            row = newest(decision="granted", person_id=PERSON)
            return row if row is not None and row.id > before_obama else None

        wait_for(obama_granted, "a genuine photo of Obama granted", log)

        record = client.get(f"/api/people/{PERSON}/enrolment", headers=login(client, Role.ADMIN))
        assert record.status_code == 200, record.text
        (listed,) = record.json()["wrong_matches"]
        assert (listed["event_id"], listed["reported_by"], listed["state"]) == (
            wrong.event_id,
            "guard-user",
            "stored",
        )
        assert "encoding" not in record.text and "example_enc" not in record.text

        erasure = services.enrolment.erase(PERSON, "admin")
        with services.sessions() as s:
            left = s.scalar(
                select(func.count())
                .select_from(ImpostorExample)
                .where(ImpostorExample.person_id == PERSON)
            )
            assert left == 0
            assert s.get_one(WrongMatchReport, report["id"]).state == "erased"

        def gate_erased() -> bool:
            key = load_key(key_file=tmp_path / "keys" / "gallery.key", key_env=None)
            held = decrypt_gallery(gallery_path.read_bytes(), key)
            return held.version >= (erasure.erasure.gallery_version or 0)

        wait_for(gate_erased, "the erasure gallery at the gate", log)
        key = load_key(key_file=tmp_path / "keys" / "gallery.key", key_env=None)
        held = decrypt_gallery(gallery_path.read_bytes(), key)
        assert held.impostor_owners == () and PERSON not in held.template_owners
    finally:
        stop_process(proc)
