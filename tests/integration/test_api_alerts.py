"""Alerts end to end: signals -> AlertService -> API and WebSocket, over a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gateway.alerts.bus import OVERFLOW, AlertBus
from gateway.alerts.types import AlertType, Severity
from gateway.auth.roles import Role
from gateway.services import Services
from tests.gatewaykit import (
    SITE,
    add_person,
    clock_of,
    gateway_client,
    login,
    make_config,
    signal,
    token,
)

DOOR = f"gate:{SITE}/b1/east"
WASHER = f"device:{SITE}/b1/r101/w1"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    with gateway_client(tmp_path, ws_ping_interval_s=0.3) as pair:
        yield pair


def _raise_door(services: Services, **kw: Any) -> int:
    views = services.alerts.apply([signal(AlertType.DOOR_FORCED_OPEN, DOOR, **kw)])
    return views[-1].id


def _washer_fault(services: Services) -> int:
    views = services.alerts.apply(
        [
            signal(
                AlertType.APPLIANCE_FAULT,
                WASHER,
                severity=Severity.CRITICAL,
                title="washer w1 leaks",
                detail={"faults": ["leak"]},
            )
        ]
    )
    return views[-1].id


def _welfare(services: Services, person_id: str) -> int:
    views = services.alerts.apply(
        [
            signal(
                AlertType.WELFARE,
                f"person:{person_id}/no_exit",
                severity=Severity.WARNING,
                title=f"{person_id} has not left for 3 days",
                detail={"person_id": person_id, "kind": "no_exit", "instance": "x"},
            )
        ]
    )
    return views[-1].id


# --- lifecycle through the API ---------------------------------------------------------------


def test_a_raised_alert_is_listed_acknowledged_assigned_commented_and_cleared(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    guard = login(client, Role.GUARD)
    alert_id = _raise_door(services)

    listed = client.get("/api/alerts", headers=guard).json()
    assert [a["id"] for a in listed] == [alert_id]
    assert listed[0]["state"] == "active" and listed[0]["severity_name"] == "critical"

    acked = client.post(f"/api/alerts/{alert_id}/ack", headers=guard)
    assert acked.status_code == 200
    assert acked.json()["state"] == "acknowledged" and acked.json()["acked_by"] == "guard-user"
    again = client.post(f"/api/alerts/{alert_id}/ack", headers=guard)
    assert again.status_code == 409 and "already acknowledged" in again.json()["detail"]

    assigned = client.post(
        f"/api/alerts/{alert_id}/assign", headers=guard, json={"assignee": "guard-user"}
    )
    assert assigned.status_code == 200 and assigned.json()["assignee"] == "guard-user"
    nobody = client.post(f"/api/alerts/{alert_id}/assign", headers=guard, json={"assignee": "x"})
    assert nobody.status_code == 422 and "not an active user" in nobody.json()["detail"]

    commented = client.post(
        f"/api/alerts/{alert_id}/comment", headers=guard, json={"text": "  on my way  "}
    )
    assert commented.status_code == 200
    blank = client.post(f"/api/alerts/{alert_id}/comment", headers=guard, json={"text": "   "})
    assert blank.status_code == 422

    cleared = client.post(f"/api/alerts/{alert_id}/clear", headers=guard)
    assert cleared.status_code == 200
    assert cleared.json()["state"] == "cleared" and cleared.json()["cleared_by"] == "guard-user"
    assert client.post(f"/api/alerts/{alert_id}/clear", headers=guard).status_code == 409

    assert client.get("/api/alerts", headers=guard).json() == []
    done = client.get("/api/alerts?state=cleared", headers=guard).json()
    assert [a["id"] for a in done] == [alert_id]

    detail = client.get(f"/api/alerts/{alert_id}", headers=guard).json()
    assert [h["action"] for h in detail["history"]] == [
        "raised",
        "acknowledged",
        "assigned",
        "comment",
        "cleared",
    ]
    assert detail["comments"] == [
        {"at": detail["comments"][0]["at"], "author": "guard-user", "text": "on my way"}
    ]


def test_a_repeat_counts_on_the_open_alert(app: tuple[TestClient, Services]) -> None:
    client, services = app
    first = _raise_door(services)
    second = _raise_door(services, title="forced again")
    assert first == second
    alert = client.get(f"/api/alerts/{first}", headers=login(client, Role.GUARD)).json()
    assert alert["count"] == 2 and alert["title"] == "forced again"


def test_unknown_alert_is_404_and_filters_apply(app: tuple[TestClient, Services]) -> None:
    client, services = app
    guard = login(client, Role.GUARD)
    assert client.get("/api/alerts/424242", headers=guard).status_code == 404
    assert client.post("/api/alerts/424242/ack", headers=guard).status_code == 404
    door = _raise_door(services)
    washer = _washer_fault(services)
    services.alerts.apply(
        [signal(AlertType.AFTER_CURFEW, DOOR, severity=Severity.INFO, building="b2")]
    )

    def ids(query: str) -> set[int]:
        response = client.get(f"/api/alerts?{query}", headers=guard)
        assert response.status_code == 200, response.text
        return {a["id"] for a in response.json()}

    assert ids("type=appliance_fault") == {washer}
    assert ids("min_severity=critical") == {door, washer}
    assert ids("min_severity=4") == {door, washer}
    assert len(ids("building=b2")) == 1
    assert client.get("/api/alerts?min_severity=loud", headers=guard).status_code == 422
    assert client.get("/api/alerts?since=2025-03-01T22:00:00", headers=guard).status_code == 422
    later = (clock_of(services).now + timedelta(minutes=1)).isoformat()
    assert ids(f"since={later.replace('+00:00', 'Z')}") == set()


def test_console_order_puts_unacknowledged_and_severe_first(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    guard = login(client, Role.GUARD)
    info = services.alerts.apply([signal(AlertType.AFTER_CURFEW, DOOR, severity=Severity.INFO)])
    door = _raise_door(services)
    washer = _washer_fault(services)
    services.alerts.acknowledge(washer, "guard-user")
    order = [a["id"] for a in client.get("/api/alerts", headers=guard).json()]
    assert order == [door, info[0].id, washer]


# --- scopes ---------------------------------------------------------------------------------


def test_facilities_see_and_act_on_appliance_alerts_only(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    facilities = login(client, Role.FACILITIES)
    door = _raise_door(services)
    washer = _washer_fault(services)
    assert [a["id"] for a in client.get("/api/alerts", headers=facilities).json()] == [washer]
    assert client.get(f"/api/alerts/{door}", headers=facilities).status_code == 404
    assert client.post(f"/api/alerts/{door}/ack", headers=facilities).status_code == 404
    assert client.post(f"/api/alerts/{washer}/ack", headers=facilities).status_code == 200


def test_counsellors_see_welfare_alerts_of_their_own_students_only(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    add_person(services, "s-mine", counsellor="counsellor-user")
    add_person(services, "s-other", counsellor="someone-else")
    counsellor = login(client, Role.COUNSELLOR)
    mine = _welfare(services, "s-mine")
    other = _welfare(services, "s-other")
    _raise_door(services)
    assert [a["id"] for a in client.get("/api/alerts", headers=counsellor).json()] == [mine]
    assert client.get(f"/api/alerts/{other}", headers=counsellor).status_code == 404
    assert client.post(f"/api/alerts/{mine}/ack", headers=counsellor).status_code == 200
    handover = client.get("/api/alerts/handover", headers=counsellor).json()
    assert handover["open_count"] == 1


def test_auditors_read_but_cannot_act(app: tuple[TestClient, Services]) -> None:
    client, services = app
    auditor = login(client, Role.AUDITOR)
    door = _raise_door(services)
    assert client.get(f"/api/alerts/{door}", headers=auditor).status_code == 200
    assert client.post(f"/api/alerts/{door}/ack", headers=auditor).status_code == 403


# --- silences, hand-over, escalation ---------------------------------------------------------


def test_a_silence_marks_matching_alerts_silenced_and_ending_it_resounds(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    guard = login(client, Role.GUARD)
    created = client.post(
        "/api/silences",
        headers=guard,
        json={"originator": f"gate:{SITE}/b1", "duration_s": 3600, "reason": "door repair"},
    )
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["active"] is True and silence["created_by"] == "guard-user"
    views = services.alerts.apply(
        [
            signal(
                AlertType.DOOR_HELD_OPEN,
                DOOR,
                severity=Severity.WARNING,
                at=clock_of(services).now,
            )
        ]
    )
    assert views[0].silenced is True
    other = services.alerts.apply(
        [signal(AlertType.DOOR_HELD_OPEN, f"gate:{SITE}/b2/main", at=clock_of(services).now)]
    )
    assert other[0].silenced is False
    listed = client.get("/api/silences", headers=guard).json()
    assert [s["id"] for s in listed] == [silence["id"]]

    ended = client.delete(f"/api/silences/{silence['id']}", headers=guard)
    assert ended.status_code == 200 and ended.json()["active"] is False
    alert = client.get(f"/api/alerts/{views[0].id}", headers=guard).json()
    assert alert["silenced"] is False
    assert [h["action"] for h in alert["history"]] == ["raised", "unsilenced"]
    assert client.get("/api/silences", headers=guard).json() == []
    assert len(client.get("/api/silences?include_past=true", headers=guard).json()) == 1


def test_silence_requests_are_validated(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    guard = login(client, Role.GUARD)
    facilities = login(client, Role.FACILITIES)
    base = {"originator": f"device:{SITE}/b1", "duration_s": 600, "reason": "service"}
    for body in (
        {**base, "originator": "gate:"},
        {**base, "originator": "everything"},
        {**base, "duration_s": 31 * 24 * 3600},
        {k: v for k, v in base.items() if k != "duration_s"},
        {**base, "reason": ""},
        {**base, "types": ["not_a_type"]},
    ):
        assert client.post("/api/silences", headers=guard, json=body).status_code == 422, body
    door_silence = client.post("/api/silences", headers=facilities, json=base)
    assert door_silence.status_code == 403
    ok = client.post(
        "/api/silences", headers=facilities, json={**base, "types": ["appliance_fault"]}
    )
    assert ok.status_code == 201
    assert client.delete("/api/silences/999", headers=guard).status_code == 404


def test_handover_lists_open_unreviewed_and_recently_cleared_alerts(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    guard = login(client, Role.GUARD)
    clock = clock_of(services)
    shift_start = clock.now
    held = services.alerts.apply(
        [signal(AlertType.DOOR_HELD_OPEN, DOOR, severity=Severity.WARNING, at=clock.now)]
    )[0]
    clock.advance(60)
    services.alerts.apply(
        [signal(AlertType.DOOR_HELD_OPEN, DOOR, action="clear", at=clock.now)]
    )  # cleared before anyone saw it: needs review
    door = _raise_door(services)
    washer = _washer_fault(services)
    services.alerts.clear(washer, "guard-user")
    since = shift_start.isoformat().replace("+00:00", "Z")
    report = client.get(f"/api/alerts/handover?since={since}", headers=guard)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["open_count"] == 1 and body["unacknowledged_count"] == 1
    assert [a["id"] for a in body["open_by_severity"]["critical"]] == [door]
    assert [a["id"] for a in body["needs_review"]] == [held.id]
    assert {a["id"] for a in body["cleared_since"]} == {held.id, washer}
    # Reviewing the auto-cleared alert takes it off the list.
    assert client.post(f"/api/alerts/{held.id}/ack", headers=guard).status_code == 200
    body = client.get(f"/api/alerts/handover?since={since}", headers=guard).json()
    assert body["needs_review"] == []


def test_unacknowledged_alerts_escalate_when_due(app: tuple[TestClient, Services]) -> None:
    client, services = app
    guard = login(client, Role.GUARD)
    door = _raise_door(services)
    assert services.alerts.escalate_due() == []
    after_s = services.config.escalation.critical_after_s
    assert after_s is not None
    clock_of(services).advance(after_s + 1)
    escalated = services.alerts.escalate_due()
    assert [(v.id, v.escalation_level) for v in escalated] == [(door, 1)]
    alert = client.get(f"/api/alerts/{door}", headers=guard).json()
    assert alert["escalation_level"] == 1 and alert["history"][-1]["action"] == "escalated"
    client.post(f"/api/alerts/{door}/ack", headers=guard)
    clock_of(services).advance(10 * after_s)
    assert services.alerts.escalate_due() == []


# --- live feed ------------------------------------------------------------------------------


def _apply_later(services: Services, delay_s: float, fn: Any) -> tuple[threading.Thread, list]:  # type: ignore[type-arg]
    stamps: list[float] = []

    def run() -> None:
        time.sleep(delay_s)
        stamps.append(time.monotonic())
        fn(services)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, stamps


FEED = "/api/ws/alerts"


@contextmanager
def _feed(client: TestClient, value: str) -> Iterator[Any]:
    """The live feed, authenticated as the console does it: the token is the first message."""
    with client.websocket_connect(FEED) as ws:
        ws.send_text(json.dumps({"type": "auth", "token": value}))
        yield ws


def _closed(ws: Any) -> WebSocketDisconnect:
    """How the server closed the socket (the next receive raises)."""
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return closed.value


def _next_alert(ws: Any) -> dict[str, Any]:
    while True:
        message = ws.receive_json()
        if message["type"] == "alert":
            return message  # type: ignore[no-any-return]


@pytest.mark.timeout(30)
def test_websocket_gets_a_snapshot_then_a_new_alert_from_another_thread_within_1s(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    existing = _raise_door(services)
    with _feed(client, token(client, Role.GUARD)) as ws:
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot"
        assert [a["id"] for a in snapshot["alerts"]] == [existing]
        thread, stamps = _apply_later(services, 0.2, _washer_fault)
        message = _next_alert(ws)
        received = time.monotonic()
        thread.join(5)
        assert message["alert"]["type"] == "appliance_fault"
        assert received - stamps[0] < 1.0


@pytest.mark.timeout(30)
def test_websocket_sends_only_what_the_role_may_see_and_pings(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    with _feed(client, token(client, Role.FACILITIES)) as ws:
        assert ws.receive_json() == {"type": "snapshot", "alerts": []}
        _raise_door(services)
        _washer_fault(services)
        seen: list[str] = []
        while len(seen) < 2:
            message = ws.receive_json()
            seen.append(message["type"])
            if message["type"] == "alert":
                assert message["alert"]["type"] == "appliance_fault"
                break
        ping = ws.receive_json()
        assert ping["type"] == "ping"


@pytest.mark.timeout(30)
def test_websocket_rejects_a_role_that_may_not_read_alerts_with_4403(
    app: tuple[TestClient, Services],
) -> None:
    client, _ = app
    with _feed(client, token(client, Role.STUDENT)) as ws:  # students read no alerts
        assert _closed(ws).code == 4403


@pytest.mark.timeout(30)
def test_websocket_expired_token_closes_4401(app: tuple[TestClient, Services]) -> None:
    client, services = app
    value = token(client, Role.GUARD)
    clock_of(services).advance(services.config.api.token_ttl_s + 1)
    with _feed(client, value) as ws:
        assert _closed(ws).code == 4401


@pytest.mark.timeout(30)
def test_websocket_token_in_the_first_message_opens_the_feed_and_is_never_logged(
    app: tuple[TestClient, Services], caplog: pytest.LogCaptureFixture
) -> None:
    client, services = app
    existing = _raise_door(services)
    value = token(client, Role.GUARD)
    caplog.set_level(logging.DEBUG)
    with _feed(client, value) as ws:
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot"
        assert [a["id"] for a in snapshot["alerts"]] == [existing]
    assert "alert feed opened for guard-user" in caplog.text
    assert value not in caplog.text


@pytest.mark.timeout(30)
def test_websocket_bearer_header_still_authenticates_without_an_auth_message(
    app: tuple[TestClient, Services],
) -> None:
    """Non-browser clients can set headers: no auth message is needed then."""
    client, _ = app
    headers = {"Authorization": f"Bearer {token(client, Role.GUARD)}"}
    with client.websocket_connect(FEED, headers=headers) as ws:
        assert ws.receive_json()["type"] == "snapshot"


@pytest.mark.timeout(30)
def test_websocket_token_in_the_url_is_refused_by_default_with_a_reason(
    app: tuple[TestClient, Services], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = app
    value = token(client, Role.GUARD)
    caplog.set_level(logging.DEBUG)
    with client.websocket_connect(f"{FEED}?token={value}") as ws:
        closed = _closed(ws)
    assert closed.code == 4401
    assert "token in the URL refused" in closed.reason
    assert '{"type": "auth"' in closed.reason
    assert value not in closed.reason
    assert "alert feed refused: token in the URL" in caplog.text
    assert value not in caplog.text


@pytest.mark.timeout(30)
def test_websocket_token_in_the_url_is_accepted_when_ws_token_in_url_is_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(api={"ws_token_in_url": True})
    with gateway_client(tmp_path, config=config) as (client, _):
        value = token(client, Role.GUARD)
        caplog.set_level(logging.DEBUG)
        with client.websocket_connect(f"{FEED}?token={value}") as ws:
            assert ws.receive_json()["type"] == "snapshot"
        with client.websocket_connect(f"{FEED}?token=not-a-token") as ws:
            assert _closed(ws).code == 4401
    assert value not in caplog.text


@pytest.mark.timeout(30)
def test_websocket_without_an_auth_message_closes_4401_after_ws_auth_timeout_s(
    tmp_path: Path,
) -> None:
    config = make_config(api={"ws_auth_timeout_s": 0.3})
    with gateway_client(tmp_path, config=config) as (client, _):
        token(client, Role.GUARD)
        started = time.monotonic()
        with client.websocket_connect(FEED) as ws:
            closed = _closed(ws)
        waited = time.monotonic() - started
    assert closed.code == 4401
    assert "no auth message within 0.3 s" in closed.reason
    assert 0.3 <= waited < 5


@pytest.mark.timeout(30)
def test_websocket_wrong_token_in_the_auth_message_closes_4401(
    app: tuple[TestClient, Services],
) -> None:
    client, _ = app
    with _feed(client, "not-a-token") as ws:
        closed = _closed(ws)
    assert closed.code == 4401
    assert "invalid or expired token" in closed.reason


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "first",
    [
        "not json",
        json.dumps({"type": "pong"}),
        json.dumps({"type": "auth"}),
        json.dumps({"type": "auth", "token": 42}),
        json.dumps({"type": "auth", "token": ""}),
        json.dumps(["auth", "token"]),
        b'{"type": "auth", "token": "x"}',
    ],
    ids=["not-json", "other-type", "no-token", "number", "empty", "array", "binary"],
)
def test_websocket_first_message_that_is_not_an_auth_message_closes_4401(
    app: tuple[TestClient, Services], first: str | bytes
) -> None:
    client, _ = app
    with client.websocket_connect(FEED) as ws:
        if isinstance(first, bytes):
            ws.send_bytes(first)
        else:
            ws.send_text(first)
        closed = _closed(ws)
    assert closed.code == 4401
    assert '{"type": "auth"' in closed.reason


def test_bus_drops_a_subscriber_that_falls_behind_without_blocking_the_publisher() -> None:
    bus = AlertBus(queue_size=5)

    async def scenario() -> list[Any]:
        queue = bus.subscribe()

        def flood() -> None:
            for i in range(50):
                bus.publish({"type": "alert", "n": i})

        publisher = threading.Thread(target=flood)
        started = time.monotonic()
        publisher.start()
        publisher.join(5)
        assert time.monotonic() - started < 1.0  # publishing never waits for the reader
        await asyncio.sleep(0.1)  # let the loop run the deliveries
        items = []
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    items = asyncio.run(scenario())
    assert [i["n"] for i in items[:-1]] == [0, 1, 2, 3, 4]
    assert items[-1] is OVERFLOW
    assert bus.subscribers == 0
    bus.publish({"type": "alert", "n": 99})  # nobody left: nothing happens
