"""The "not this person" button in a real headless Chromium against a real gateway and broker.

Rules checked: on the access log a guard sees the button on face decisions that named someone
(not on card rows); clicking it asks first, then reports the event, and the row says so (also
after a reload: the access log carries the report's state); the person's enrolment record in
the admin console lists the report (time, gate, reporter, state). An auditor sees the access log
without the button.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from gateway.app import Gateway
from gateway.auth.roles import Role
from gateway.db.schema import AccessRecord
from gateway.web import STATIC_ROOT
from tests.e2e.harness import EdgePublisher, LiveServer, log_in, username
from tests.gatewaykit import add_person, ensure_user

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ZH = json.loads((STATIC_ROOT / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))


def _stored(gateway: Gateway, event_id: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with gateway.services.sessions() as s:
            if s.query(AccessRecord).filter_by(event_id=event_id).count():
                return
        time.sleep(0.1)
    raise AssertionError(f"access event {event_id} not stored")


def log_out(page: Page) -> None:
    """Log out and wait for the login form (a page load before that could keep the session)."""
    page.click("#logout")
    expect(page.locator("#login-username")).to_be_visible()


def test_guard_reports_a_wrong_match_from_the_access_log_and_the_record_shows_it(
    page: Page, server: LiveServer, edge: EdgePublisher, gateway: Gateway, api: Any
) -> None:
    add_person(gateway.services, "s-lookalike")
    face = edge.access(
        "s-lookalike", method="face", distance=0.58, margin=0.3, faces_in_view=1, frames_used=2
    )
    card = edge.access("s-lookalike", method="card")
    _stored(gateway, face.event_id)
    _stored(gateway, card.event_id)

    ensure_user(gateway.services, Role.AUDITOR)
    log_in(page, server.url, Role.AUDITOR)
    page.goto(server.url + "/#/alerts/access")
    expect(page.locator(f'#access-table tr[data-event="{face.event_id}"]')).to_be_visible()
    expect(page.locator("#access-table .wrong-match")).to_have_count(0)
    log_out(page)

    log_in(page, server.url, Role.GUARD)
    page.goto(server.url + "/#/alerts/access")
    face_row = page.locator(f'#access-table tr[data-event="{face.event_id}"]')
    card_row = page.locator(f'#access-table tr[data-event="{card.event_id}"]')
    expect(face_row.locator(".wrong-match")).to_have_text(ZH["access.not_this_person"])
    expect(card_row.locator(".wrong-match")).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.dismiss())  # asks first: dismissed, nothing sent
    face_row.locator(".wrong-match").click()
    expect(face_row.locator(".wrong-match")).to_be_visible()
    headers = api.as_role(Role.ADMIN)
    record = api.get("/api/people/s-lookalike/enrolment", headers=headers).json()
    assert record["wrong_matches"] == []

    page.once("dialog", lambda dialog: dialog.accept())
    face_row.locator(".wrong-match").click()
    expect(face_row.locator(".wrong-match-reported")).to_have_text(
        ZH["access.wrong_match_reported"]
    )
    (report,) = api.get("/api/people/s-lookalike/enrolment", headers=headers).json()[
        "wrong_matches"
    ]
    assert (report["event_id"], report["reported_by"]) == (face.event_id, username(Role.GUARD))
    page.reload()  # the access log knows the event was reported: no second button
    expect(face_row.locator(".wrong-match-reported")).to_contain_text(
        ZH[f"wrong_match.{report['state']}"]
    )
    expect(face_row.locator(".wrong-match")).to_have_count(0)
    log_out(page)

    log_in(page, server.url, Role.ADMIN)
    page.goto(server.url + "/#/admin/people/s-lookalike")
    listed = page.locator("#wrong-matches tbody tr")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text(username(Role.GUARD))
    expect(listed).to_contain_text("campus/b1/g1")
    expect(listed).to_contain_text(ZH[f"wrong_match.{report['state']}"])
