"""End to end, the student page's two promises, with every part real.

1. A student asks to be told when a running washer finishes; the simulated washer (firmware-like
   MQTT on mosquitto) ends its cycle, the real device bridge turns that into a finished state,
   the gateway fires the watch: the student's live feed gets the notice and the configured
   webhook receives it with the student's id.
2. A student withdraws face consent on their page; the erasure goes to a real gate process,
   which confirms it, and the page's record shows the erasure complete and no template left;
   the gate then refuses the face it admitted before.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from websockets.sync.client import connect

from contracts.settings import MqttSettings
from dormguard.demo import scaled_thresholds
from edge.devices.app import build_bridge
from edge.devices.config import DevicesConfig
from edge.devices.model import ApplianceType, Firmware
from edge.devices.simulation.fleet import SimDevice, bridge_device_entries, device_name
from edge.devices.simulation.runner import DeviceSimulator
from edge.devices.vendors import configured_topic
from gateway.api import create_app
from gateway.app import Gateway, build_gateway
from gateway.auth.roles import Role
from gateway.config import GatewayConfig
from tests.broker import Broker, free_port
from tests.e2e.harness import LiveServer
from tests.gatekit import gate_config, spawn_gate, stop_process, write_key
from tests.gatewaykit import PASSWORD, ensure_user
from tests.gatewayproc import gateway_config
from tests.notify_receiver import Receiver, http_receiver
from tests.photos import gate_frame

pytestmark = [pytest.mark.slow, pytest.mark.broker]

SITE = "campus1"
SPEED = 300.0  # the demo's: a washer's hour takes 12 s


def wait_for(found: Callable[[], Any], timeout: float, what: str) -> Any:
    """``found()``'s first truthy answer; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture
def stack(broker: Broker, tmp_path: Path) -> Iterator[tuple[Gateway, LiveServer, Receiver]]:
    """Gateway (ingest on mosquitto, enrolment on) + its API + a webhook receiver."""
    with http_receiver() as receiver:
        write_key(tmp_path / "gallery.key")
        raw = gateway_config(tmp_path, broker.port, site=SITE)
        raw["enrolment"] = {"gallery_key": {"file": str(tmp_path / "gallery.key")}}
        raw["notifications"] = {
            "channels": [{"type": "webhook", "name": "campus-app", "url": receiver.url + "/app"}],
            "students": {"channels": ["campus-app"]},
            "poll_interval_s": 0.2,
        }
        gw = build_gateway(GatewayConfig.model_validate(raw))
        gw.start(wait_broker_s=10)
        assert gw.ingest.wait_ready(10), "the gateway did not subscribe"
        ensure_user(gw.services, Role.ADMIN)
        server = LiveServer(create_app(gw.services, ws_ping_interval_s=2.0), free_port()).start()
        try:
            yield gw, server, receiver
        finally:
            server.stop()
            gw.stop()


def _login(base: str, username: str, password: str) -> dict[str, str]:
    answer = httpx.post(
        base + "/api/auth/login", json={"username": username, "password": password}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _student(base: str, person_id: str) -> tuple[dict[str, str], str]:
    """A student of b1 with an account, made by the admin; their headers and token."""
    admin = _login(base, "admin-user", PASSWORD)
    person = {"person_id": person_id, "name": "Test Student", "buildings": ["b1"]}
    made = httpx.post(base + "/api/people", json=person, headers=admin, timeout=10)
    assert made.status_code == 201, made.text
    issued = httpx.post(f"{base}/api/people/{person_id}/student-account", headers=admin)
    assert issued.status_code == 200, issued.text
    headers = _login(base, person_id, issued.json()["code"])
    return headers, headers["Authorization"][7:]


class FeedReader(threading.Thread):
    """The student's live feed, read into ``messages`` until the socket closes."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.messages: list[dict[str, Any]] = []
        self.socket: Any = None

    def run(self) -> None:
        with connect(self.url) as socket:
            self.socket = socket
            socket.send(json.dumps({"type": "auth", "token": self.token}))
            for raw in socket:
                self.messages.append(json.loads(raw))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m.get("type") == kind]


def test_a_real_washer_cycle_ending_tells_the_student_on_the_feed_and_the_webhook(
    broker: Broker, stack: tuple[Gateway, LiveServer, Receiver]
) -> None:
    _, server, receiver = stack
    base = server.url
    headers, token = _student(base, "s-wash")
    name = device_name(ApplianceType.WASHER, "r101", 1)
    washer = SimDevice(
        name,
        ApplianceType.WASHER,
        Firmware.TASMOTA,
        "b1",
        "r101",
        configured_topic(Firmware.TASMOTA, name),
    )
    bridge = build_bridge(
        DevicesConfig.model_validate(
            {
                "site": SITE,
                "bridge_id": "student-e2e",
                "mqtt": {"port": broker.port},
                "tick_s": 0.1,
                "telemetry_interval_s": 0,
                "types": scaled_thresholds(SPEED),
                "devices": bridge_device_entries([washer]),
            }
        )
    )
    bridge.start()
    sim = DeviceSimulator([washer], MqttSettings(port=broker.port), speed=SPEED, seed=5)
    feed = FeedReader(base.replace("http://", "ws://") + "/api/ws/student", token)
    try:
        assert bridge.link.wait_ready(10)
        sim.start()
        feed.start()
        wait_for(lambda: feed.of_type("snapshot"), 10, "the feed's snapshot")

        def running() -> dict[str, Any] | None:
            rooms = httpx.get(base + "/api/student/rooms", headers=headers, timeout=10).json()
            return next((d for d in rooms if d["board_status"] == "running"), None)

        machine = wait_for(running, 60, "the simulated washer to start a cycle")
        assert machine["remaining_s"] is not None  # the page can say how long it has left
        watch = httpx.post(
            base + "/api/student/watches",
            json={"kind": "finished", "device_key": machine["device_key"]},
            headers=headers,
            timeout=10,
        )
        assert watch.status_code == 201, watch.text

        notices = wait_for(lambda: feed.of_type("notice"), 90, "the notice on the live feed")
        assert [(n["watch_id"], n["watch_kind"]) for n in notices] == [
            (watch.json()["id"], "finished")
        ]
        assert notices[0]["device"]["device_key"] == machine["device_key"]
        pushed = [m["device"]["board_status"] for m in feed.of_type("device")]
        assert "finished" in pushed or "free" in pushed  # the board changed live too

        posts = wait_for(lambda: receiver.on("/app"), 30, "the webhook notice")
        body = posts[0].json
        assert body["kind"] == "watch" and body["person_id"] == "s-wash"
        assert body["device"]["device_key"] == machine["device_key"]
        assert "洗衣机已完成" in body["title"]
        fired = httpx.get(base + "/api/student/watches", headers=headers, timeout=10).json()
        assert fired[0]["fired_at"] is not None
        time.sleep(3)  # the next cycles tell nobody: the watch fired once
        assert len(feed.of_type("notice")) == 1 and len(receiver.on("/app")) == 1
    finally:
        if feed.socket is not None:
            feed.socket.close()
        sim.stop()
        bridge.stop()


def test_withdrawing_consent_on_the_page_erases_at_a_real_gate_and_shows_it_confirmed(
    broker: Broker,
    stack: tuple[Gateway, LiveServer, Receiver],
    tmp_path: Path,
    photos: Path,
) -> None:
    _, server, _ = stack
    base = server.url
    admin = _login(base, "admin-user", PASSWORD)
    headers, _ = _student(base, "s-obama")
    consent = {"purpose": "face_access", "granted": True, "evidence": "form 17"}
    assert httpx.post(f"{base}/api/people/s-obama/consent", json=consent, headers=admin).is_success
    enrolled = httpx.post(
        f"{base}/api/people/s-obama/photos",
        files=[("files", ("obama.jpg", (photos / "obama.jpg").read_bytes(), "image/jpeg"))],
        headers=admin,
        timeout=60,
    )
    assert enrolled.status_code == 200, enrolled.text
    camera = tmp_path / "camera"
    camera.mkdir()
    cv2.imwrite(str(camera / "obama2.jpg"), gate_frame(photos / "obama2.jpg"))
    (tmp_path / "gate").mkdir()
    config = gate_config(
        tmp_path / "gate",
        port=broker.port,
        source={"kind": "folder", "target": str(camera), "fps": 4},
        key_file=tmp_path / "gallery.key",
        gallery_path=tmp_path / "gate" / "gallery.bin",
    )
    log = tmp_path / "gate.log"

    def access(decision: str) -> list[dict[str, Any]]:
        rows = httpx.get(
            base + "/api/access", params={"decision": decision}, headers=admin, timeout=10
        ).json()
        return list(rows["items"])

    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = spawn_gate(config, log)
        granted = wait_for(lambda: access("granted"), 90, "the gate to admit the enrolled face")
        assert granted[0]["person_id"] == "s-obama", log.read_text()[-3000:]
        record = httpx.get(base + "/api/student/record", headers=headers, timeout=10).json()
        assert record["face_consent"] is True and len(record["templates"]) == 1
        assert "encoding" not in json.dumps(record) and "template_enc" not in json.dumps(record)

        withdrawn = httpx.post(base + "/api/student/face/withdraw", headers=headers, timeout=30)
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["face_opt_out"] is True
        erasure = withdrawn.json()["erasure"]
        assert erasure is not None and erasure["unconfirmed_gates"] == [f"{SITE}/b1/g1"]

        def confirmed() -> dict[str, Any] | None:
            now = httpx.get(base + "/api/student/record", headers=headers, timeout=10).json()
            done = now["erasures"] and now["erasures"][0]["completed_at"] is not None
            return now if done else None

        record = wait_for(confirmed, 60, "the gate to confirm the erasure")
        assert record["erasures"][0]["unconfirmed_gates"] == []
        assert record["templates"] == [] and record["face_consent"] is False
        assert record["person"]["face_opt_out"] is True
        assert [c["granted"] for c in record["consents"]][:1] == [False]
        done_at = datetime.fromisoformat(record["erasures"][0]["completed_at"])

        def denied_after() -> list[dict[str, Any]]:
            return [e for e in access("denied") if datetime.fromisoformat(e["ts"]) > done_at]

        denied = wait_for(denied_after, 60, "the gate to refuse the erased face")
        assert denied[0]["person_id"] is None

        again = httpx.post(base + "/api/student/face/withdraw", headers=headers, timeout=30)
        assert again.status_code == 200  # a second tap records and erases nothing new
        assert again.json()["erasure"]["id"] == record["erasures"][0]["id"]
        after = httpx.get(base + "/api/student/record", headers=headers, timeout=10).json()
        assert len(after["consents"]) == len(record["consents"])
    finally:
        stop_process(proc)
