"""End to end, the student page's two promises, every part real, on a phone-sized Chromium.

1. A student signs in, sees the washer a real simulated appliance drives (firmware-like MQTT on
   mosquitto, turned into states by the real device bridge), taps "notify me when it finishes"
   while it runs, and is told when the simulated cycle ends: a toast on the page, and the
   configured webhook receives the notice with the student's id. The watch fires once.
2. A student withdraws face consent on their page; the erasure goes to a real gate process,
   which confirms it; the page shows the erasure complete and no template left, and the gate
   then refuses the face it admitted before.

The module's gateway has one gate (an erasure is complete only when every gate confirmed it)
and a webhook channel for the students' notices.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from playwright.sync_api import Page, expect

from contracts.settings import MqttSettings
from dormguard.demo import scaled_thresholds
from edge.devices.app import build_bridge
from edge.devices.config import DevicesConfig
from edge.devices.model import ApplianceType, Firmware
from edge.devices.simulation.fleet import SimDevice, bridge_device_entries, device_name
from edge.devices.simulation.runner import DeviceSimulator
from edge.devices.vendors import configured_topic
from gateway.app import Gateway, build_gateway
from gateway.auth.roles import Role
from gateway.config import GatewayConfig
from gateway.web import STATIC_ROOT
from tests.broker import Broker
from tests.e2e.harness import LiveServer, bearer, enrol_face, issue_student, log_in_as, username
from tests.gatekit import gate_config, spawn_gate, stop_process, write_key
from tests.gatewaykit import PASSWORD, ensure_user
from tests.gatewayproc import gateway_config
from tests.notify_receiver import Receiver, http_receiver
from tests.photos import gate_frame

pytestmark = [pytest.mark.slow, pytest.mark.broker]

SITE = "campus1"  # tests.gatekit.gate_config's site
GATE_KEY = f"{SITE}/b1/g1"
SPEED = 300.0  # the demo's: a washer's hour takes 12 s
ZH = json.loads((STATIC_ROOT / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))


def wait_for(found: Callable[[], Any], timeout: float, what: str) -> Any:
    """``found()``'s first truthy answer; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with http_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def gateway_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway's files, its gallery key (the gate's too) among them."""
    return tmp_path_factory.mktemp("student-e2e")


@pytest.fixture(scope="module")
def gateway(broker: Broker, receiver: Receiver, gateway_dir: Path) -> Iterator[Gateway]:
    """This module's gateway (replaces the e2e one): one gate, enrolment, a students' webhook."""
    tmp = gateway_dir
    write_key(tmp / "gallery.key")
    raw = gateway_config(tmp, broker.port, site=SITE)
    raw["enrolment"] = {"gallery_key": {"file": str(tmp / "gallery.key")}}
    raw["notifications"] = {
        "channels": [{"type": "webhook", "name": "campus-app", "url": receiver.url + "/app"}],
        "students": {"channels": ["campus-app"]},
        "poll_interval_s": 0.2,
    }
    gw = build_gateway(GatewayConfig.model_validate(raw))
    gw.start(wait_broker_s=10)
    assert gw.ingest.wait_ready(10), "the gateway did not subscribe"
    ensure_user(gw.services, Role.ADMIN)
    yield gw
    gw.stop()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_a_real_washer_cycle_ending_tells_the_student_on_the_page_and_the_webhook(
    phone: Page, server: LiveServer, http: httpx.Client, broker: Broker, receiver: Receiver
) -> None:
    code = issue_student(http, "s-wash", "Wash Student", ["b1"])
    name = device_name(ApplianceType.WASHER, "r101", 1)
    topic = configured_topic(Firmware.TASMOTA, name)
    washer = SimDevice(name, ApplianceType.WASHER, Firmware.TASMOTA, "b1", "r101", topic)
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
    try:
        assert bridge.link.wait_ready(10)
        sim.start()
        log_in_as(phone, server.url, "s-wash", code)
        machine = phone.locator(f'article.machine[data-key="{SITE}/b1/r101/{name}"]')
        expect(machine).to_be_visible(timeout=30_000)  # the bridge's first state, live
        expect(machine).to_have_attribute("data-status", "running", timeout=60_000)
        phone.locator("h1").tap()  # the gesture that lets the page sound its tone
        machine.locator("button.notify-finished").tap()
        expect(phone.locator("#watch-list li.watch")).to_have_attribute("data-state", "open")

        toast = phone.locator("#toasts .toast")
        expect(toast).to_have_count(1, timeout=90_000)  # the simulated cycle ends
        expect(toast).to_contain_text(ZH["kind.washer"])
        expect(phone.locator("#watch-list li.watch")).to_have_attribute("data-state", "fired")

        posts = wait_for(lambda: receiver.on("/app"), 30, "the webhook notice")
        body = posts[0].json
        assert body["kind"] == "watch" and body["person_id"] == "s-wash"
        assert body["device"]["device_key"] == f"{SITE}/b1/r101/{name}"
        assert "洗衣机已完成" in body["title"]
        student = bearer(http, "s-wash", code)
        [fired] = http.get("/api/student/watches", headers=student).json()
        assert fired["fired_at"] is not None
        time.sleep(3)  # later cycles tell nobody: the watch fired once
        assert len(receiver.on("/app")) == 1
        expect(toast).to_have_count(1)
    finally:
        sim.stop()
        bridge.stop()


def test_withdrawing_consent_on_the_page_erases_at_a_real_gate_and_shows_it_confirmed(
    phone: Page,
    server: LiveServer,
    http: httpx.Client,
    broker: Broker,
    gateway_dir: Path,
    tmp_path: Path,
    photos: Path,
) -> None:
    code = issue_student(http, "s-obama", "Barack Obama", ["b1"])
    enrol_face(http, "s-obama", photos / "obama.jpg")
    admin = bearer(http, username(Role.ADMIN), PASSWORD)
    camera = tmp_path / "camera"
    camera.mkdir()
    cv2.imwrite(str(camera / "obama2.jpg"), gate_frame(photos / "obama2.jpg"))
    (tmp_path / "gate").mkdir()
    config = gate_config(
        tmp_path / "gate",
        port=broker.port,
        source={"kind": "folder", "target": str(camera), "fps": 4},
        key_file=gateway_dir / "gallery.key",
        gallery_path=tmp_path / "gate" / "gallery.bin",
    )
    log = tmp_path / "gate.log"

    def access(decision: str) -> list[dict[str, Any]]:
        page = http.get("/api/access", params={"decision": decision}, headers=admin).json()
        return list(page["items"])

    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = spawn_gate(config, log)
        granted = wait_for(lambda: access("granted"), 90, "the gate to admit the enrolled face")
        assert granted[0]["person_id"] == "s-obama", log.read_text()[-3000:]

        log_in_as(phone, server.url, "s-obama", code)
        phone.click('#nav a[data-section="record"]')
        expect(phone.locator("#record-face-state")).to_have_attribute("data-consent", "true")
        expect(phone.locator("#record-templates li")).to_have_count(1)
        phone.locator("#withdraw-start").tap()
        phone.locator("#withdraw-confirm").tap()
        erasure = phone.locator("#record-erasures li.erasure")
        # pending at first, then the page's poll shows the gate's confirmation
        expect(erasure).to_have_attribute("data-state", "complete", timeout=60_000)
        expect(phone.locator("#record-erasures .gate-pending")).to_have_count(0)
        expect(phone.locator("#record-face-state")).to_have_attribute("data-opt-out", "true")
        expect(phone.locator("p#record-templates")).to_be_visible()  # "no templates"

        record = http.get("/api/student/record", headers=bearer(http, "s-obama", code)).json()
        assert record["templates"] == [] and record["erasures"][0]["unconfirmed_gates"] == []
        assert [c["granted"] for c in record["consents"]][:1] == [False]
        done_at = datetime.fromisoformat(record["erasures"][0]["completed_at"])

        def denied_after() -> list[dict[str, Any]]:
            return [e for e in access("denied") if datetime.fromisoformat(e["ts"]) > done_at]

        denied = wait_for(denied_after, 60, "the gate to refuse the erased face")
        assert denied[0]["person_id"] is None

        again = http.post("/api/student/face/withdraw", headers=bearer(http, "s-obama", code))
        assert again.status_code == 200  # a second tap records and erases nothing new
        assert again.json()["erasure"]["id"] == record["erasures"][0]["id"]
    finally:
        stop_process(proc)
