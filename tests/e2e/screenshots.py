"""Screenshots of the console's main screens for the docs (1280x800 PNG; the student page 390 px
wide, as on a phone).

    .venv/bin/python -m tests.e2e.screenshots                  # writes docs/screenshots/*.png
    .venv/bin/python -m tests.e2e.screenshots --only student   # the student page's only

Starts its own mosquitto and gateway, fills them with a small demo campus (door events,
appliance states and readings through MQTT, as gates and device bridges publish them; people,
access rows and failed-login counts straight into the database) and captures the screens with
Debian's Chromium. ``capture`` and ``capture_student`` are also run by the browser tests, into a
temporary folder, so the script cannot rot unnoticed.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts.models import DeviceTelemetry
from contracts.topics import DeviceAddress, DeviceChannel, device_topic
from gateway.api import create_app
from gateway.app import Gateway
from gateway.auth.roles import Role
from gateway.db.schema import LoginThrottle
from tests.broker import Broker, free_port
from tests.e2e.harness import (
    PHONE_VIEWPORT,
    SITE,
    VIEWPORT,
    EdgePublisher,
    LiveServer,
    enrol_face,
    issue_student,
    launch_chromium,
    log_in,
    log_in_as,
)
from tests.gatewaykit import add_access, add_person, add_presence

SCREENS = (
    "login",
    "guard-console",
    "facilities-board",
    "device",
    "admin-people",
    "admin-throttles",
)
STUDENT_SCREENS = ("student-rooms", "student-notice", "student-record")
ROOT = Path(__file__).resolve().parents[2]

# (building, room, device_id, kind, status, extra DeviceState fields)
DEMO_DEVICES: list[tuple[str, str, str, str, str, dict[str, Any]]] = [
    ("b1", "101", "w1", "washer", "running", {"remaining_s": 1520, "power_w": 420.0}),
    ("b1", "101", "w2", "washer", "idle", {}),
    ("b1", "101", "w3", "washer", "finished", {}),
    ("b1", "101", "d1", "dryer", "running", {"remaining_s": 2710, "power_w": 1850.0}),
    ("b1", "101", "d2", "dryer", "idle", {"faults": ["over_temperature"]}),
    ("b1", "102", "wd1", "water_dispenser", "heating", {"temperature_c": 81.0}),
    ("b1", "102", "hd1", "hair_dryer", "idle", {}),
    ("b1", "102", "hd2", "hair_dryer", "in_use", {"power_w": 1200.0}),
    ("b2", "201", "w1", "washer", "idle", {"online": False}),
    ("b2", "201", "w2", "washer", "running", {"remaining_s": 300, "power_w": 380.0}),
    ("b2", "201", "w3", "washer", "idle", {"faults": ["leak"]}),
    ("b2", "201", "d1", "dryer", "finished", {}),
    ("b2", "202", "wd1", "water_dispenser", "ready", {"temperature_c": 95.0}),
    ("b2", "202", "hd1", "hair_dryer", "idle", {}),
]
CHART_DEVICE = ("b1", "101", "w1")

# (scope, user name tried, source, failures, minutes since the first and the last failure):
# someone guessing "admin" from one address for six minutes, and a user's typos from an IPv6 /64.
DEMO_THROTTLES: list[tuple[str, str, str, int, float, float]] = [
    ("address", "", "203.0.113.45", 14, 6.0, 0.5),
    ("account_address", "admin", "203.0.113.45", 14, 6.0, 0.5),
    ("account", "admin", "", 14, 6.0, 0.5),
    ("address", "", "2001:db8:4f2:17::/64", 3, 12.0, 10.0),
    ("account_address", "wang.fang", "2001:db8:4f2:17::/64", 3, 12.0, 10.0),
    ("account", "wang.fang", "", 3, 12.0, 10.0),
]


def seed_demo(gw: Gateway, edge: EdgePublisher) -> None:
    """People, presence and access rows, appliances, a few live alerts and login throttles."""
    services = gw.services
    now = datetime.now(UTC)
    people = [
        ("s1001", "Li Wei"),
        ("s1002", "Wang Fang"),
        ("s1003", "Zhang Min"),
        ("s1004", "Chen Jie"),
    ]
    for i, (person_id, name) in enumerate(people):
        add_person(services, person_id, name=name, buildings=["b1"], counsellor="counsellor-user")
        add_presence(services, person_id, "b1", since=now - timedelta(hours=2 + i), gate_id="g1")
        add_access(
            services, ts=now - timedelta(minutes=30 * (i + 1)), person_id=person_id, gate_id="g1"
        )
    add_person(services, "v2001", name="Visitor Sun", kind="visitor", buildings=["b2"])
    add_access(
        services,
        ts=now - timedelta(minutes=5),
        person_id=None,
        decision="denied",
        reason="unknown_face",
    )
    for building, room, device_id, kind, status, extra in DEMO_DEVICES:
        edge.device(room, device_id, building=building, kind=kind, status=status, **extra)
    building, room, device_id = CHART_DEVICE
    address = DeviceAddress(SITE, building, room, device_id)
    for minute in range(90, -1, -2):  # a wash cycle's power over the last 90 minutes
        phase = (90 - minute) % 45
        power = 2000.0 if phase < 8 else 420.0 if phase < 35 else 650.0 if phase < 40 else 5.0
        reading = DeviceTelemetry(
            producer="bridge-e2e",
            site=SITE,
            building=building,
            room=room,
            device_id=device_id,
            kind="washer",
            ts=now - timedelta(minutes=minute),
            power_w=power,
            energy_kwh=round(12.0 + (90 - minute) * 0.012, 3),
        )
        edge.publisher.publish(device_topic(address, DeviceChannel.TELEMETRY), reading.to_bytes())
    edge.door("forced_open", building="b1", gate="g2")
    edge.door("held_open", building="b2", gate="g1", open_for_s=95)
    with services.sessions.begin() as session:
        for scope, name, source, failures, first_min, last_min in DEMO_THROTTLES:
            session.add(
                LoginThrottle(
                    scope=scope,
                    username=name,
                    address=source,
                    failures=failures,
                    first_failure_at=now - timedelta(minutes=first_min),
                    last_failure_at=now - timedelta(minutes=last_min),
                )
            )


def capture(browser: Any, base_url: str, out_dir: Path) -> list[Path]:
    """The main screens as PNG files in ``out_dir`` (login in Chinese, the rest in English)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    written = []

    def shot(name: str) -> None:
        path = out_dir / f"{name}.png"
        page.screenshot(path=str(path))
        written.append(path)

    try:
        page.goto(base_url + "/")
        page.wait_for_selector("#login-form")
        shot("login")
        page.select_option("#login-lang", "en")
        log_in(page, base_url, Role.ADMIN)
        page.wait_for_selector("#alert-list tbody tr")
        page.wait_for_selector('#banner[data-status="live"]', state="attached")
        page.locator("#alert-list tbody tr").first.click()
        page.wait_for_selector("#alert-detail h2")
        shot("guard-console")
        page.click('#nav a[data-section="board"]')
        page.wait_for_selector('#board[data-loaded="1"] .tile')
        shot("facilities-board")
        building, room, device_id = CHART_DEVICE
        page.click(f'.tile[data-key="{SITE}/{building}/{room}/{device_id}"]')
        page.wait_for_selector("#device-chart svg")
        shot("device")
        page.click('#nav a[data-section="admin"]')
        page.wait_for_selector("#people-table tbody tr")
        page.locator("#people-table tbody tr").first.click()
        page.wait_for_selector("#person-form")
        page.wait_for_selector("#enrolment-status dl")
        shot("admin-people")
        page.click('.tabs a[data-tab="throttles"]')
        page.wait_for_selector("#throttles-table tbody tr")
        shot("admin-throttles")
    finally:
        context.close()
    return written


STUDENT_ID = "2024010203"
STUDENT_DEVICE = ("b1", "101", "w1")  # running in DEMO_DEVICES: the student asks to be told


def seed_student_demo(client: Any, edge: EdgePublisher, photos: Path) -> tuple[str, str]:
    """A student of b1 with a face enrolled and a week at the gates, and b1's appliances;
    returns their username and sign-in code. ``client``: an httpx client of the API."""
    code = issue_student(client, STUDENT_ID, "李明", ["b1"])
    enrol_face(client, STUDENT_ID, photos / "obama.jpg")
    now = datetime.now(UTC)
    for day in range(6, -1, -1):
        for hour, direction, gate in ((7.8, "out", "g2"), (18.5, "in", "g1")):
            ts = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=day)
            ts += timedelta(hours=hour)
            if ts < now:
                edge.access(STUDENT_ID, gate=gate, direction=direction, method="face", ts=ts)
    edge.access(
        STUDENT_ID,
        gate="g1",
        decision="denied",
        method="card",
        reason="outside_schedule",
        ts=now - timedelta(days=2, hours=1),
    )
    for building, room, device_id, kind, status, extra in DEMO_DEVICES:
        if building == "b1":
            edge.device(room, device_id, building=building, kind=kind, status=status, **extra)
    return STUDENT_ID, code


def capture_student(
    browser: Any, base_url: str, out_dir: Path, login: tuple[str, str], edge: EdgePublisher
) -> list[Path]:
    """The student page on a phone, in Chinese: rooms, a notice, the record (whole page)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True, device_scale_factor=1
    )
    context.grant_permissions(["notifications"], origin=base_url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    written = []

    def shot(name: str, full_page: bool = False) -> None:
        path = out_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        written.append(path)

    building, room, device_id = STUDENT_DEVICE
    machine = page.locator(f'article.machine[data-key="{SITE}/{building}/{room}/{device_id}"]')
    try:
        log_in_as(page, base_url, *login)
        page.wait_for_selector('#rooms[data-loaded="1"] article.machine')
        page.wait_for_selector('#banner[data-status="live"]', state="attached")
        shot("student-rooms")
        machine.locator("button.notify-finished").tap()
        page.wait_for_selector("#watch-list li.watch")
        edge.device(room, device_id, building=building, status="finished")
        page.wait_for_selector("#toasts .toast")
        page.wait_for_selector('#watch-list li.watch[data-state="fired"]')
        shot("student-notice")
        page.locator("#toasts .toast-close").tap()
        page.click('#nav a[data-section="record"]')
        page.wait_for_selector('#record[data-loaded="1"] #record-access tbody tr')
        shot("student-record", full_page=True)
    finally:
        context.close()
    return written


def main() -> int:
    """Start everything, seed the demo campus, write the screenshots, stop."""
    import httpx
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import start_gateway
    from tests.gatewayproc import Publisher
    from tests.photos import sample_photos_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", choices=("all", "staff", "student"), default="all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "mosquitto").mkdir()
        broker = Broker(tmp / "mosquitto")
        broker.start()
        gw = start_gateway(tmp, broker.port)
        server = LiveServer(create_app(gw.services), free_port()).start()
        publisher = Publisher(broker.port, client_id="screenshots-edge")
        try:
            edge = EdgePublisher(publisher)
            seed_demo(gw, edge)
            with httpx.Client(base_url=server.url, timeout=30) as client:
                login = seed_student_demo(client, edge, sample_photos_dir())
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                try:
                    written = []
                    if args.only in ("all", "staff"):
                        written += capture(browser, server.url, args.out)
                    if args.only in ("all", "student"):
                        written += capture_student(browser, server.url, args.out, login, edge)
                    for path in written:
                        print(path)
                finally:
                    browser.close()
        finally:
            publisher.stop()
            server.stop()
            gw.stop()
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
