"""The students' own page in a real headless Chromium on a phone (390x844, touch) against a real
gateway, broker and SQLite files; students are made by an admin through the API.

Rules checked: a student signs in with the code the office issued and lands on their building's
service rooms, in Chinese, on a page that fits the phone (no sideways scroll, 44 px tap targets);
machines show free / running with the minutes left, live from MQTT and updated in place (offline
too); "notify me when it finishes" leads, when the machine finishes, to a toast, a tone, a browser
notification and the watch marked fired; "notify me when a washer is free" appears only when no
washer is free and can be cancelled; the record shows their access events (published as a gate
publishes them), consents and templates, and withdrawing face consent asks first and then shows
the erasure pending at the gates that have not confirmed it; they set a PIN and change their
password and stay signed in; the page reconnects by itself after the API restarts; staff sections
are not theirs; English works.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from gateway.web import STATIC_ROOT
from tests.e2e.harness import (
    GATES,
    SITE,
    EdgePublisher,
    LiveServer,
    bearer,
    enrol_face,
    issue_student,
    log_in_as,
)
from tests.e2e.screenshots import STUDENT_SCREENS, capture_student, seed_student_demo

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ZH = json.loads((STATIC_ROOT / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
EN = json.loads((STATIC_ROOT / "i18n" / "en.json").read_text(encoding="utf-8"))
TAP_TARGETS = (
    "#topbar button, #topbar select, #nav a, #view button, #view input, #view select, .toast button"
)
BUILDING = "b2"  # the students of these tests live in b2; b1 holds other machines


def text(lang: dict[str, str], key: str, **values: Any) -> str:
    """A dictionary entry with its {placeholders} filled, as the page's t() does."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), lang[key])


def key(room: str, device_id: str, building: str = BUILDING) -> str:
    return f"{SITE}/{building}/{room}/{device_id}"


def card(page: Page, room: str, device_id: str) -> Any:
    return page.locator(f'article.machine[data-key="{key(room, device_id)}"]')


@pytest.fixture
def http(server: LiveServer) -> Any:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def sign_in(phone: Page, server: LiveServer, http: httpx.Client, person_id: str) -> str:
    """Make the student (admin API), sign in on the phone with the issued code; the code."""
    code = issue_student(http, person_id, f"Student {person_id}", [BUILDING])
    log_in_as(phone, server.url, person_id, code)
    return code


def assert_fits_the_phone(phone: Page) -> None:
    """No sideways scroll, and every visible button, link and field is at least 44 px high."""
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide"
    small = phone.evaluate(
        """(selector) => [...document.querySelectorAll(selector)]
            .filter((el) => el.offsetParent !== null)
            .map((el) => [el.id || el.className || el.tagName, el.getBoundingClientRect().height])
            .filter(([, height]) => height < 44)""",
        TAP_TARGETS,
    )
    assert small == []


def test_student_signs_in_with_the_issued_code_and_sees_their_rooms_live(
    phone: Page, server: LiveServer, http: httpx.Client, edge: EdgePublisher
) -> None:
    edge.device("r1", "w1", building=BUILDING, status="idle")
    edge.device("r1", "w2", building=BUILDING, status="running", remaining_s=690)
    edge.device("r1", "d1", building=BUILDING, kind="dryer", status="running", remaining_s=30)
    edge.device("x9", "w1", building="b1", status="idle")  # another building: not theirs
    sign_in(phone, server, http, "s-rooms")

    expect(phone.locator("#view")).to_have_attribute("data-section", "rooms")
    expect(phone.locator("html")).to_have_attribute("lang", "zh-CN")
    nav = phone.locator("#nav a").evaluate_all("els => els.map(e => e.dataset.section)")
    assert nav == ["rooms", "record"]
    free, running, dryer = card(phone, "r1", "w1"), card(phone, "r1", "w2"), card(phone, "r1", "d1")
    expect(free).to_have_attribute("data-status", "free")
    expect(free).to_contain_text(ZH["board.free"])
    expect(running).to_have_attribute("data-status", "running")
    expect(running).to_contain_text(text(ZH, "student.left_minutes", minutes=12))
    expect(dryer).to_contain_text(ZH["student.left_under_minute"])
    expect(running.locator("button.notify-finished")).to_have_text(ZH["student.notify_finished"])
    expect(free.locator("button")).to_have_count(0)
    room = phone.locator('.svc-room[data-room="r1"]')
    expect(room.locator("h2")).to_have_text(text(ZH, "board.room", room="r1"))
    # a washer is free in r1: no "notify me when one is free" for washers; none for dryers
    # either would be wrong, since the only dryer is running
    expect(room.locator('button.notify-free[data-kind="washer"]')).to_have_count(0)
    expect(room.locator('button.notify-free[data-kind="dryer"]')).to_have_count(1)
    expect(phone.locator(f'article.machine[data-key="{SITE}/b1/x9/w1"]')).to_have_count(0)
    assert_fits_the_phone(phone)

    # live and in place: the same element changes when the bridge reports
    handle = running.element_handle()
    assert handle is not None
    edge.device("r1", "w2", building=BUILDING, status="idle", online=False)
    expect(running).to_have_attribute("data-status", "offline")
    expect(running).to_contain_text(ZH["board.offline"])
    edge.device("r1", "w1", building=BUILDING, status="idle", faults=["leak"])
    expect(free).to_have_attribute("data-status", "fault")
    expect(free).to_contain_text(ZH["fault.leak"])
    assert handle.evaluate("el => el.isConnected && el.dataset.status") == "offline"
    # now no washer of r1 is free: the room offers the free-washer reminder
    expect(room.locator('button.notify-free[data-kind="washer"]')).to_have_count(1)


def test_notify_me_when_it_finishes_shows_a_notice_and_the_watch_fires(
    phone: Page, server: LiveServer, http: httpx.Client, edge: EdgePublisher
) -> None:
    edge.device("r2", "w1", building=BUILDING, status="running", remaining_s=1500)
    code = sign_in(phone, server, http, "s-notice")
    running = card(phone, "r2", "w1")
    expect(running).to_have_attribute("data-status", "running")
    assert phone.evaluate("Notification.permission") == "granted"
    phone.locator("h1").tap()  # the gesture that lets the page play sound
    beeps_before = int(phone.evaluate("document.body.dataset.beeps || '0'"))

    running.locator("button.notify-finished").tap()
    expect(running.locator(".watching")).to_have_text(ZH["student.watching_finish"])
    expect(running.locator("button.notify-finished")).to_have_count(0)
    watch = phone.locator("#watch-list li.watch")
    expect(watch).to_have_count(1)
    expect(watch).to_have_attribute("data-state", "open")
    student = bearer(http, "s-notice", code)
    [stored] = http.get("/api/student/watches", headers=student).json()
    assert stored["kind"] == "finished" and stored["device_key"] == key("r2", "w1")

    edge.device("r2", "w1", building=BUILDING, status="finished")
    toast = phone.locator("#toasts .toast")
    expect(toast).to_have_count(1)
    notice = text(ZH, "student.notice.finished", kind=ZH["kind.washer"], place="r2 · w1")
    expect(toast).to_contain_text(notice)
    expect(toast).to_have_attribute("data-watch-id", str(stored["id"]))
    expect(watch).to_have_attribute("data-state", "fired")
    expect(running).to_have_attribute("data-status", "finished")
    expect(running).to_contain_text(ZH["student.finished_collect"])
    assert int(phone.evaluate("document.body.dataset.beeps || '0'")) > beeps_before
    expect(phone.locator("body")).to_have_attribute("data-notifications", "1")
    [fired] = http.get("/api/student/watches", headers=student).json()
    assert fired["fired_at"] is not None and fired["fired_device_key"] == key("r2", "w1")
    assert_fits_the_phone(phone)
    toast.locator("button.toast-close").tap()
    expect(toast).to_have_count(0)


def test_notify_me_when_a_washer_is_free_only_when_none_is_and_it_can_be_cancelled(
    phone: Page, server: LiveServer, http: httpx.Client, edge: EdgePublisher
) -> None:
    edge.device("r3", "w1", building=BUILDING, status="running", remaining_s=900)
    edge.device("r3", "w2", building=BUILDING, status="running", remaining_s=1200)
    code = sign_in(phone, server, http, "s-free")
    room = phone.locator('.svc-room[data-room="r3"]')
    ask = room.locator('button.notify-free[data-kind="washer"]')
    expect(ask).to_have_text(text(ZH, "student.notify_free", kind=ZH["kind.washer"]))
    ask.tap()
    expect(room.locator('.watching[data-kind="washer"]')).to_be_visible()
    watch = phone.locator("#watch-list li.watch")
    expect(watch).to_have_attribute("data-state", "open")
    asked = text(ZH, "student.watch.free_room", kind=ZH["kind.washer"], room="r3")
    expect(watch).to_contain_text(asked)
    watch.locator("button.watch-cancel").tap()
    expect(watch).to_have_attribute("data-state", "cancelled")
    expect(ask).to_be_visible()  # offered again
    student = bearer(http, "s-free", code)
    [cancelled] = http.get("/api/student/watches", headers=student).json()
    assert cancelled["cancelled_at"] is not None and cancelled["kind"] == "free"

    ask.tap()  # again, and this time a washer frees up
    expect(phone.locator('#watch-list li.watch[data-state="open"]')).to_have_count(1)
    edge.device("r3", "w2", building=BUILDING, status="idle")
    toast = phone.locator("#toasts .toast")
    notice = text(ZH, "student.notice.free", kind=ZH["kind.washer"], place="r3 · w2")
    expect(toast).to_contain_text(notice)
    expect(phone.locator('#watch-list li.watch[data-state="fired"]')).to_have_count(1)
    expect(ask).to_have_count(0)  # a washer is free now


def test_record_shows_access_and_withdrawing_face_consent_leaves_the_erasure_pending_at_the_gates(
    phone: Page, server: LiveServer, http: httpx.Client, edge: EdgePublisher, photos: Path
) -> None:
    code = issue_student(http, "s-record", "Student Record", [BUILDING])
    enrol_face(http, "s-record", photos / "obama.jpg")
    edge.access("s-record", building=BUILDING, gate="g1", direction="in", method="face")
    edge.access(
        "s-record",
        building=BUILDING,
        gate="g1",
        direction="out",
        decision="denied",
        method="card",
        reason="wrong_pin",
    )
    edge.access("someone-else", building=BUILDING, gate="g1")  # not theirs: not shown
    log_in_as(phone, server.url, "s-record", code)
    phone.click('#nav a[data-section="record"]')
    expect(phone.locator("#view")).to_have_attribute("data-section", "record")
    rows = phone.locator("#record-access tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-decision", "denied")  # newest first
    expect(rows.nth(0)).to_contain_text(ZH["reason.wrong_pin"])
    expect(rows.nth(1)).to_contain_text(ZH["method.face"])
    expect(phone.locator("#record-person")).to_contain_text("Student Record")
    expect(phone.locator("#record-face-state")).to_have_attribute("data-consent", "true")
    expect(phone.locator("#record-templates li")).to_have_count(1)
    expect(phone.locator("#record-consents li.consent")).to_have_count(1)
    assert_fits_the_phone(phone)

    phone.locator("#withdraw-start").tap()
    expect(phone.locator("#withdraw .confirm-text")).to_have_text(ZH["record.withdraw_question"])
    phone.locator("#withdraw-cancel").tap()  # changed their mind: nothing happened
    expect(phone.locator("#withdraw-confirm")).to_have_count(0)
    phone.locator("#withdraw-start").tap()
    phone.locator("#withdraw-confirm").tap()
    expect(phone.locator("#record-message")).to_have_text(ZH["record.withdrawn"])
    state = phone.locator("#record-face-state")
    expect(state).to_have_attribute("data-opt-out", "true")
    expect(phone.locator("#withdraw")).to_have_count(0)
    erasure = phone.locator("#record-erasures li.erasure")
    expect(erasure).to_have_count(1)
    # no gate of this test acknowledges: the erasure stays pending and names the gates
    expect(erasure).to_have_attribute("data-state", "pending")
    expect(erasure).to_contain_text(ZH["record.erasure_pending"])
    pending = erasure.locator("li.gate-pending").all_inner_texts()
    gate_keys = {f"{SITE}/{b}/{g}" for b, g, _ in GATES}
    assert pending and set(pending) <= gate_keys | {g for _, g, _ in GATES}, pending
    phone.wait_for_timeout(2500)  # a poll later, still pending
    expect(erasure).to_have_attribute("data-state", "pending")
    expect(phone.locator("#record-templates li")).to_have_count(0)
    student = bearer(http, "s-record", code)
    record = http.get("/api/student/record", headers=student).json()
    assert record["person"]["face_opt_out"] is True
    assert record["erasures"][0]["completed_at"] is None


def test_student_sets_a_pin_and_changes_the_password_and_stays_signed_in(
    phone: Page, server: LiveServer, http: httpx.Client
) -> None:
    code = sign_in(phone, server, http, "s-secrets")
    phone.click('#nav a[data-section="record"]')
    expect(phone.locator("#record-person")).to_contain_text(ZH["record.pin_unset"])
    phone.fill("#pin-input", "4821")
    phone.fill("#pin-again", "4812")
    phone.click("#pin-form button[type=submit]")
    expect(phone.locator("#pin-message")).to_have_text(ZH["record.pin_mismatch"])
    phone.fill("#pin-again", "4821")
    phone.click("#pin-form button[type=submit]")
    expect(phone.locator("#pin-message")).to_have_text(ZH["record.pin_saved"])
    expect(phone.locator("#record-person")).to_contain_text(ZH["record.pin_set"])

    phone.fill("#password-current", "not-my-code")
    phone.fill("#password-new", "a-long-new-passphrase-42")
    phone.fill("#password-again", "a-long-new-passphrase-42")
    phone.click("#password-form button[type=submit]")
    expect(phone.locator("#password-message")).to_contain_text(ZH["record.password_wrong"])
    expect(phone.locator("#topbar")).to_be_visible()  # a wrong password does not log out
    token_before = phone.evaluate("sessionStorage.getItem('dormguard.token')")
    phone.fill("#password-current", code)
    phone.fill("#password-new", "a-long-new-passphrase-42")
    phone.fill("#password-again", "a-long-new-passphrase-42")
    phone.click("#password-form button[type=submit]")
    expect(phone.locator("#password-message")).to_have_text(ZH["record.password_saved"])
    token_after = phone.evaluate("sessionStorage.getItem('dormguard.token')")
    assert token_after and token_after != token_before
    expect(phone.locator("#topbar")).to_be_visible()  # signed in again, not logged out
    phone.click('#nav a[data-section="rooms"]')
    expect(phone.locator("#banner")).to_have_attribute("data-status", "live")
    old = http.post("/api/auth/login", json={"username": "s-secrets", "password": code})
    assert old.status_code == 401
    bearer(http, "s-secrets", "a-long-new-passphrase-42")


def test_student_page_reconnects_after_the_api_restarts_and_catches_up(
    phone: Page, server: LiveServer, http: httpx.Client, edge: EdgePublisher
) -> None:
    edge.device("r5", "w1", building=BUILDING, status="running", remaining_s=600)
    sign_in(phone, server, http, "s-reconnect")
    machine = card(phone, "r5", "w1")
    expect(machine).to_have_attribute("data-status", "running")
    banner = phone.locator("#banner")
    expect(banner).to_have_attribute("data-status", "live")
    server.stop()
    expect(banner).to_have_attribute("data-status", "reconnecting")
    expect(banner).to_be_visible()
    edge.device("r5", "w1", building=BUILDING, status="finished")  # while cut off
    phone.wait_for_timeout(300)
    server.start()
    expect(banner).to_have_attribute("data-status", "live", timeout=20_000)
    expect(banner).to_be_hidden()
    expect(machine).to_have_attribute("data-status", "finished")  # the new snapshot brought it
    edge.device("r5", "w1", building=BUILDING, status="idle")  # and changes flow again
    expect(machine).to_have_attribute("data-status", "free")


def test_student_cannot_open_staff_sections(
    phone: Page, server: LiveServer, http: httpx.Client
) -> None:
    sign_in(phone, server, http, "s-nosy")
    for section in ("alerts", "board", "admin", "device/campus%2Fb2%2Fr1%2Fw1"):
        phone.goto(f"{server.url}/#/{section}")
        expect(phone.locator("#view")).to_have_attribute("data-section", "rooms")
        expect(phone.locator("#alert-list, #board, #people-table, #device-head")).to_have_count(0)
    assert phone.locator("#nav a").count() == 2
    expect(phone.locator("#sound-toggle")).to_be_visible()


def test_student_page_switches_to_english(
    phone: Page, server: LiveServer, http: httpx.Client, edge: EdgePublisher
) -> None:
    edge.device("r4", "w1", building=BUILDING, status="running", remaining_s=300)
    sign_in(phone, server, http, "s-english")
    running = card(phone, "r4", "w1")
    expect(running).to_contain_text(text(ZH, "student.left_minutes", minutes=5))
    phone.select_option("#lang-select", "en")
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    expect(phone.locator("#nav")).to_contain_text(EN["nav.rooms"])
    expect(phone.locator("#view h1")).to_have_text(EN["student.rooms.title"])
    expect(running).to_contain_text(text(EN, "student.left_minutes", minutes=5))
    expect(running.locator("button.notify-finished")).to_have_text(EN["student.notify_finished"])
    phone.click('#nav a[data-section="record"]')
    expect(phone.locator("#view h1")).to_have_text(EN["record.title"])
    assert_fits_the_phone(phone)


def test_screenshots_of_the_student_page(
    browser: Any,
    server: LiveServer,
    edge: EdgePublisher,
    http: httpx.Client,
    photos: Path,
    tmp_path: Path,
) -> None:
    login = seed_student_demo(http, edge, photos)
    written = capture_student(browser, server.url, tmp_path, login, edge)
    assert [p.stem for p in written] == list(STUDENT_SCREENS)
    for path in written:
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", header[16:24])[0] == 390
