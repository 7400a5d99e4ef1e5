"""The student page's API over a real SQLite file: accounts, own data only, watches.

Rules checked: an admin issues a student a one-time sign-in code (only its hash is kept; a new
code signs the old one out); the users API makes no student accounts; a student sees only their
own record and their own buildings' rooms; a watch fires once, in the ingest transaction that
stores the state change, with a notice queued for the configured student channel; the live
feed admits students only and pushes their building's machines and their own notices.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from contracts.models import DeviceState
from contracts.topics import DeviceAddress, DeviceChannel, device_topic
from gateway.alerts.rules.engine import AlertRules
from gateway.auth.roles import Role
from gateway.db.schema import NoticeRow, User, Watch
from gateway.ingest.batch import Inbound
from gateway.ingest.pipeline import LocalPipeline
from gateway.services import Services
from tests.gatewaykit import (
    SITE,
    add_access,
    add_device,
    add_person,
    clock_of,
    gateway_client,
    login,
    make_config,
)

NOTIFY = {
    "channels": [{"type": "webhook", "name": "campus-app", "url": "http://127.0.0.1:9/hook"}],
    "students": {"channels": ["campus-app"]},
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    config = make_config(notifications=NOTIFY)
    with gateway_client(tmp_path, config=config) as pair:
        yield pair


def issue(client: TestClient, person_id: str) -> dict[str, Any]:
    response = client.post(
        f"/api/people/{person_id}/student-account", headers=login(client, Role.ADMIN)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sign_in(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "student"
    return {"Authorization": f"Bearer {response.json()['token']}"}


def student(
    client: TestClient, services: Services, person_id: str, **fields: Any
) -> dict[str, str]:
    """A person with a student account, signed in with the issued code."""
    add_person(services, person_id, **fields)
    return sign_in(client, person_id, issue(client, person_id)["code"])


def state(room: str, device_id: str, status: str, *, building: str = "b1", **extra: Any) -> Inbound:
    """A bridge's state message, as the broker delivers it."""
    model = DeviceState(
        producer="bridge-test",
        site=SITE,
        building=building,
        room=room,
        device_id=device_id,
        kind=extra.pop("kind", "washer"),
        status=status,  # type: ignore[arg-type]
        **extra,
    )
    topic = device_topic(DeviceAddress(SITE, building, room, device_id), DeviceChannel.STATE)
    return Inbound(topic, model.to_bytes())


def ingest(services: Services, *messages: Inbound) -> Any:
    """Store messages through the real pipeline (dispatch, rules, one transaction)."""
    return LocalPipeline(services, AlertRules(services.config.rules)).process(list(messages))


# --- accounts -------------------------------------------------------------------------------


def test_an_issued_code_signs_the_student_in_and_a_new_code_signs_the_old_one_out(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    add_person(services, "s100", name="Li Lei")
    first = issue(client, "s100")
    assert first["username"] == "s100" and first["created"] is True
    assert len(first["code"]) == 14  # xxxx-xxxx-xxxx
    headers = sign_in(client, "s100", first["code"])
    me = client.get("/api/me", headers=headers).json()
    assert me["role"] == "student" and me["person_id"] == "s100"
    with services.sessions() as session:
        row = session.scalars(select(User).where(User.username == "s100")).one()
        assert first["code"] not in row.password_hash  # only a hash is kept
    second = issue(client, "s100")
    assert second["created"] is False and second["code"] != first["code"]
    assert client.get("/api/me", headers=headers).status_code == 401  # signed out
    refused = client.post("/api/auth/login", json={"username": "s100", "password": first["code"]})
    assert refused.status_code == 401
    sign_in(client, "s100", second["code"])


def test_only_students_get_a_student_account_and_a_staff_name_is_not_taken_over(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    add_person(services, "w1", kind="staff")
    response = client.post("/api/people/w1/student-account", headers=login(client, Role.ADMIN))
    assert response.status_code == 422 and "not a student" in response.json()["detail"]
    assert (
        client.post("/api/people/nobody/student-account", headers=login(client, Role.ADMIN))
    ).status_code == 404
    login(client, Role.GUARD)  # the account "guard-user" exists now
    add_person(services, "guard-user")
    response = client.post(
        "/api/people/guard-user/student-account", headers=login(client, Role.ADMIN)
    )
    assert response.status_code == 409 and "staff account" in response.json()["detail"]


def test_the_users_api_makes_no_student_accounts_and_turns_none_into_one(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    admin = login(client, Role.ADMIN)
    body = {"username": "x1", "password": "Tr0ub4dor&3-horse-staple", "role": "student"}
    response = client.post("/api/users", json=body, headers=admin)
    assert response.status_code == 422 and "student-account" in response.json()["detail"]
    student(client, services, "s101")
    guard_id = client.get("/api/users", headers=admin).json()
    ids = {u["username"]: u["id"] for u in guard_id}
    assert (
        client.patch(f"/api/users/{ids['s101']}", json={"role": "guard"}, headers=admin)
    ).status_code == 422
    login(client, Role.GUARD)
    ids = {u["username"]: u["id"] for u in client.get("/api/users", headers=admin).json()}
    assert (
        client.patch(f"/api/users/{ids['guard-user']}", json={"role": "student"}, headers=admin)
    ).status_code == 422


def test_a_student_replaces_the_code_with_their_own_password(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    add_person(services, "s102")
    code = issue(client, "s102")["code"]
    headers = sign_in(client, "s102", code)
    wrong = {"current_password": "not-the-code", "new_password": "my own long passphrase"}
    assert client.post("/api/me/password", json=wrong, headers=headers).status_code == 403
    weak = {"current_password": code, "new_password": "short"}
    assert client.post("/api/me/password", json=weak, headers=headers).status_code == 422
    assert client.get("/api/me", headers=headers).status_code == 200  # refusals keep the session
    good = {"current_password": code, "new_password": "my own long passphrase"}
    assert client.post("/api/me/password", json=good, headers=headers).status_code == 204
    assert client.get("/api/me", headers=headers).status_code == 401
    sign_in(client, "s102", "my own long passphrase")


def test_guessing_the_current_password_with_a_stolen_token_is_throttled_like_a_login(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    add_person(services, "s103")
    headers = sign_in(client, "s103", issue(client, "s103")["code"])
    answers = []
    for i in range(30):
        guess = {"current_password": f"guess number {i:02d}", "new_password": "a new passphrase"}
        answer = client.post("/api/me/password", json=guess, headers=headers)
        answers.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) > 0
            break
    assert answers[0] == 403 and answers[-1] == 429, answers


# --- own data only --------------------------------------------------------------------------


def test_the_record_holds_the_students_own_data_and_no_template(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    clock = clock_of(services)
    mine = student(client, services, "s200", cards=["04A1B2C3"])
    student(client, services, "s201")
    add_access(services, ts=clock() - timedelta(days=2), person_id="s200", gate_id="east")
    add_access(services, ts=clock() - timedelta(days=40), person_id="s200")  # too old
    add_access(services, ts=clock() - timedelta(days=1), person_id="s201")  # someone else
    record = client.get("/api/student/record", headers=mine).json()
    assert record["person"]["person_id"] == "s200"
    assert record["person"]["cards"] == 1 and "04A1B2C3" not in json.dumps(record)
    assert [(a["gate_id"], a["decision"]) for a in record["access"]] == [("east", "granted")]
    assert record["templates"] == [] and record["face_consent"] is False
    assert client.post("/api/student/pin", json={"pin": "12"}, headers=mine).status_code == 422
    assert client.post("/api/student/pin", json={"pin": "4821"}, headers=mine).status_code == 204
    assert client.get("/api/student/record", headers=mine).json()["person"]["has_pin"] is True


def test_rooms_are_the_students_own_buildings_only(app: tuple[TestClient, Services]) -> None:
    client, services = app
    headers = student(client, services, "s300", buildings=["b1"])
    add_device(services, "r1", "w1", status="running", state={"remaining_s": 600})
    add_device(services, "r1", "d1", kind="dryer", faults=["door_open"])
    add_device(services, "r9", "w9", building="b2")
    rooms = client.get("/api/student/rooms", headers=headers).json()
    assert [(d["device_id"], d["board_status"]) for d in rooms] == [
        ("d1", "fault"),
        ("w1", "running"),
    ]
    assert rooms[1]["remaining_s"] == 600
    other = {"kind": "finished", "device_key": f"{SITE}/b2/r9/w9"}
    assert client.post("/api/student/watches", json=other, headers=headers).status_code == 404


def test_staff_cannot_use_the_student_routes(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    for role in (Role.ADMIN, Role.GUARD):
        response = client.get("/api/student/record", headers=login(client, role))
        assert response.status_code == 403


# --- watches --------------------------------------------------------------------------------


def test_a_finished_watch_fires_once_with_a_notice_for_the_student_channel(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    headers = student(client, services, "s400")
    key = add_device(services, "r1", "w1", status="running")
    made = client.post(
        "/api/student/watches", json={"kind": "finished", "device_key": key}, headers=headers
    )
    assert made.status_code == 201, made.text
    again = client.post(
        "/api/student/watches", json={"kind": "finished", "device_key": key}, headers=headers
    )
    assert again.json()["id"] == made.json()["id"]  # the same open watch, not a second one
    clock_of(services).advance(60)
    out = ingest(services, state("r1", "w1", "running", remaining_s=30))
    assert out.watch_notices == []
    clock_of(services).advance(60)
    out = ingest(services, state("r1", "w1", "finished"))
    assert [(n["person_id"], n["watch_kind"]) for n in out.watch_notices] == [("s400", "finished")]
    assert "洗衣机已完成" in out.watch_notices[0]["title"]
    clock_of(services).advance(60)
    assert ingest(services, state("r1", "w1", "idle")).watch_notices == []  # fired already
    with services.sessions() as session:
        notices = session.scalars(select(NoticeRow)).all()
        assert [(n.route, n.channel, n.kind, n.status) for n in notices] == [
            ("students", "campus-app", "watch", "queued")
        ]
        assert notices[0].payload["data"]["person_id"] == "s400"
    watches = client.get("/api/student/watches", headers=headers).json()
    assert watches[0]["fired_at"] is not None and watches[0]["fired_device_key"] == key


def test_a_free_watch_fires_on_a_machine_of_that_kind_in_the_students_building(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    headers = student(client, services, "s500")
    add_device(services, "r1", "w1", status="running")
    add_device(services, "r1", "d1", kind="dryer", status="running")
    add_device(services, "r9", "w9", building="b2", status="running")
    body = {"kind": "free", "device_kind": "washer"}
    assert client.post("/api/student/watches", json=body, headers=headers).status_code == 201
    clock_of(services).advance(60)
    out = ingest(
        services,
        state("r9", "w9", "idle", building="b2"),  # another building
        state("r1", "d1", "idle", kind="dryer"),  # another kind
    )
    assert out.watch_notices == []
    clock_of(services).advance(60)
    out = ingest(services, state("r1", "w1", "idle"))
    assert [n["device"]["device_id"] for n in out.watch_notices] == ["w1"]


def test_a_cancelled_watch_does_not_fire_and_a_student_cannot_cancel_anothers(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    mine = student(client, services, "s600")
    theirs = student(client, services, "s601")
    key = add_device(services, "r1", "w1", status="running")
    body = {"kind": "finished", "device_key": key}
    watch_id = client.post("/api/student/watches", json=body, headers=mine).json()["id"]
    assert client.delete(f"/api/student/watches/{watch_id}", headers=theirs).status_code == 404
    assert client.delete(f"/api/student/watches/{watch_id}", headers=mine).status_code == 204
    assert client.delete(f"/api/student/watches/{watch_id}", headers=mine).status_code == 404
    clock_of(services).advance(60)
    assert ingest(services, state("r1", "w1", "finished")).watch_notices == []
    with services.sessions() as session:
        assert session.scalars(select(Watch)).one().cancelled_at is not None


def test_open_watches_are_limited_per_student(app: tuple[TestClient, Services]) -> None:
    client, services = app
    headers = student(client, services, "s700")
    for i in range(11):
        add_device(services, "r1", f"w{i:02d}", status="running")
    codes = [
        client.post(
            "/api/student/watches",
            json={"kind": "finished", "device_key": f"{SITE}/b1/r1/w{i:02d}"},
            headers=headers,
        ).status_code
        for i in range(11)
    ]
    assert codes == [201] * 10 + [409]
    bad = {"kind": "finished"}
    assert client.post("/api/student/watches", json=bad, headers=headers).status_code == 422


# --- live feed ------------------------------------------------------------------------------


def _auth(ws: Any, headers: dict[str, str]) -> None:
    ws.send_text(json.dumps({"type": "auth", "token": headers["Authorization"][7:]}))


def test_the_live_feed_pushes_own_building_machines_and_own_notices(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    headers = student(client, services, "s800")
    key = add_device(services, "r1", "w1", status="running")
    add_device(services, "r9", "w9", building="b2", status="running")
    body = {"kind": "finished", "device_key": key}
    assert client.post("/api/student/watches", json=body, headers=headers).status_code == 201
    with client.websocket_connect("/api/ws/student") as ws:
        _auth(ws, headers)
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot"
        assert [d["device_id"] for d in snapshot["devices"]] == ["w1"]
        assert [w["device_key"] for w in snapshot["watches"]] == [key]
        clock_of(services).advance(60)
        out = ingest(
            services, state("r9", "w9", "idle", building="b2"), state("r1", "w1", "finished")
        )
        for message in [{"type": "device", "device": d} for d in out.devices] + out.watch_notices:
            services.student_bus.publish(message)  # what Gateway._after_commit does
        device = ws.receive_json()
        assert device["type"] == "device" and device["device"]["device_id"] == "w1"
        assert device["device"]["board_status"] == "finished"
        notice = ws.receive_json()
        assert notice["type"] == "notice" and notice["watch_kind"] == "finished"
        assert "person_id" not in notice


def test_the_live_feed_refuses_staff(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    with client.websocket_connect("/api/ws/student") as ws:
        _auth(ws, login(client, Role.GUARD))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4403


def test_withdrawal_without_enrolment_configured_says_so(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    headers = student(client, services, "s900")
    response = client.post("/api/student/face/withdraw", headers=headers)
    assert response.status_code == 503 and "not configured" in response.json()["detail"]
