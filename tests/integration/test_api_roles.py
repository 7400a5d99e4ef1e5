"""Every route against every role: 401 without a token, 403 for each role not allowed.

The expected matrix is written out here, so a new route that is not listed (or that forgot
its role check) fails ``test_every_route_is_in_the_matrix``. Mounted apps (the console's
static files) must be public paths and serve nothing but files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount
from starlette.websockets import WebSocketDisconnect

from gateway.api import PUBLIC_PATHS
from gateway.auth.roles import Role
from gateway.services import Services
from tests.gatewaykit import ALL_ROLES, gateway_client, token

A, G, F, C, AU = Role.ADMIN, Role.GUARD, Role.FACILITIES, Role.COUNSELLOR, Role.AUDITOR
S = Role.STUDENT
EVERYONE = frozenset(ALL_ROLES)

# (method, path) -> roles allowed (admin is always allowed and listed for clarity).
MATRIX: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/"): EVERYONE,  # the web console's index page (no data)
    ("POST", "/api/auth/login"): EVERYONE,
    ("POST", "/api/auth/logout"): EVERYONE,
    ("GET", "/api/me"): EVERYONE,
    ("POST", "/api/me/password"): EVERYONE,
    ("GET", "/api/health"): frozenset({A, AU}),
    ("GET", "/metrics"): frozenset({A, AU}),
    # users
    ("GET", "/api/users"): frozenset({A}),
    ("POST", "/api/users"): frozenset({A}),
    ("PATCH", "/api/users/{user_id}"): frozenset({A}),
    ("POST", "/api/users/{user_id}/deactivate"): frozenset({A}),
    ("POST", "/api/users/{user_id}/password"): frozenset({A}),
    # login throttles
    ("GET", "/api/login-throttles"): frozenset({A}),
    ("DELETE", "/api/login-throttles/{throttle_id}"): frozenset({A}),
    # alerts: read by all four, acted on by all but auditors (each within their scope)
    ("GET", "/api/alerts"): frozenset({A, G, F, C, AU}),
    ("GET", "/api/alerts/handover"): frozenset({A, G, F, C, AU}),
    ("GET", "/api/alerts/{alert_id}"): frozenset({A, G, F, C, AU}),
    ("POST", "/api/alerts/{alert_id}/ack"): frozenset({A, G, F, C}),
    ("POST", "/api/alerts/{alert_id}/assign"): frozenset({A, G, F, C}),
    ("POST", "/api/alerts/{alert_id}/comment"): frozenset({A, G, F, C}),
    ("POST", "/api/alerts/{alert_id}/clear"): frozenset({A, G, F, C}),
    ("GET", "/api/silences"): frozenset({A, G, F, AU}),
    ("POST", "/api/silences"): frozenset({A, G, F}),
    ("DELETE", "/api/silences/{silence_id}"): frozenset({A, G, F}),
    # access log, occupancy, fire alarm
    ("GET", "/api/access"): frozenset({A, G, AU, C}),
    ("POST", "/api/access/{event_id}/wrong-match"): frozenset({A, G}),
    ("GET", "/api/occupancy"): frozenset({A, G, AU}),
    ("GET", "/api/occupancy/{building}/roll-call"): frozenset({A, G, AU}),
    ("POST", "/api/buildings/{building}/fire-alarm"): frozenset({A, G}),
    # devices
    ("GET", "/api/devices"): frozenset({A, F, G, AU}),
    ("GET", "/api/devices/{device_key:path}"): frozenset({A, F, G, AU}),
    ("GET", "/api/devices/{device_key:path}/series"): frozenset({A, F, G, AU}),
    # people (read: guard, counsellor, auditor; write: admin)
    ("GET", "/api/people"): frozenset({A, G, C, AU}),
    ("GET", "/api/people/{person_id}"): frozenset({A, G, C, AU}),
    ("POST", "/api/people"): frozenset({A}),
    ("PATCH", "/api/people/{person_id}"): frozenset({A}),
    # enrolment (gateway/api/routes/enrolment.py)
    ("POST", "/api/people/{person_id}/student-account"): frozenset({A}),
    ("POST", "/api/people/{person_id}/consent"): frozenset({A}),
    ("POST", "/api/people/{person_id}/photos"): frozenset({A}),
    ("DELETE", "/api/people/{person_id}/face"): frozenset({A}),
    ("GET", "/api/people/{person_id}/enrolment"): frozenset({A, AU}),
    ("GET", "/api/gallery/deliveries"): frozenset({A, AU}),
    ("POST", "/api/gallery/publish"): frozenset({A}),
    # gates
    ("GET", "/api/gates"): frozenset({A, G, AU}),
    ("GET", "/api/gates/{gate_key:path}/commands"): frozenset({A, G, AU}),
    ("POST", "/api/gates/{gate_key:path}/command"): frozenset({A, G}),
    # dead letters
    ("GET", "/api/dead-letters"): frozenset({A, AU}),
    # the student page: students only, each their own data (an admin has none to see)
    ("GET", "/api/student/record"): frozenset({S}),
    ("POST", "/api/student/face/withdraw"): frozenset({S}),
    ("POST", "/api/student/pin"): frozenset({S}),
    ("GET", "/api/student/rooms"): frozenset({S}),
    ("GET", "/api/student/watches"): frozenset({S}),
    ("POST", "/api/student/watches"): frozenset({S}),
    ("DELETE", "/api/student/watches/{watch_id}"): frozenset({S}),
}

WEBSOCKETS: dict[str, frozenset[Role]] = {
    "/api/ws/alerts": frozenset({A, G, F, C, AU}),
    "/api/ws/student": frozenset({S}),
}

# Values for path parameters: ids that do not exist, so an allowed role changes nothing.
PATH_VALUES = {
    "user_id": "999999",
    "alert_id": "999999",
    "silence_id": "999999",
    "throttle_id": "999999",
    "building": "zz-nowhere",
    "device_key": "campus/zz/r0/none",
    "gate_key": "campus/zz/none",
    "person_id": "zz-nobody",
    "watch_id": "999999",
    "event_id": "00000000000000000000000000000000",
}


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES[m.group(1)], path)


def _http_routes(client: TestClient) -> list[tuple[str, str, APIRoute]]:
    routes = []
    for ctx in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = ctx.original_route
        if isinstance(route, APIRoute):
            for method in sorted(ctx.methods or ()):
                routes.append((method, str(ctx.path), route))
    return routes


def _declared_roles(route: APIRoute) -> frozenset[Role] | None:
    for dependency in route.dependant.dependencies:
        allowed = getattr(dependency.call, "allowed_roles", None)
        if allowed is not None:
            return frozenset(allowed)
    return None


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    # Production mode: no OpenAPI docs, real password rules.
    with gateway_client(tmp_path_factory.mktemp("roles"), mode="production") as pair:
        yield pair


@pytest.fixture(scope="module")
def tokens(app: tuple[TestClient, Services]) -> dict[Role, str]:
    client, _ = app
    return {role: token(client, role) for role in ALL_ROLES}


def test_every_route_is_in_the_matrix_and_declares_exactly_its_roles(
    app: tuple[TestClient, Services],
) -> None:
    client, _ = app
    seen = set()
    for method, path, route in _http_routes(client):
        key = (method, path)
        seen.add(key)
        assert key in MATRIX, f"{method} {path} is not in the role matrix of this test"
        declared = _declared_roles(route)
        if path in PUBLIC_PATHS:
            assert declared is None, f"{method} {path} is public but declares roles"
        else:
            assert declared == MATRIX[key], f"{method} {path} declares {declared}"
    assert seen == set(MATRIX), f"routes gone: {set(MATRIX) - seen}"
    ws = {
        str(ctx.path)
        for ctx in iter_route_contexts(client.app.routes)  # type: ignore[attr-defined]
        if isinstance(ctx.original_route, APIWebSocketRoute)
    }
    assert ws == set(WEBSOCKETS)


def test_only_public_routes_answer_without_a_token(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    for method, path, _route in _http_routes(client):
        body: dict[str, object] | None = {} if method in ("POST", "PATCH", "PUT") else None
        response = client.request(method, _url(path), json=body)
        if path in PUBLIC_PATHS:
            assert response.status_code != 401, f"{method} {path}"
        else:
            assert response.status_code == 401, f"{method} {path}: {response.status_code}"


@pytest.mark.parametrize("role", ALL_ROLES, ids=[r.value for r in ALL_ROLES])
def test_each_role_gets_403_exactly_where_it_is_not_allowed(
    app: tuple[TestClient, Services], tokens: dict[Role, str], role: Role
) -> None:
    client, _ = app
    headers = {"Authorization": f"Bearer {tokens[role]}"}
    # Logout revokes the token: it goes last.
    routes = sorted(_http_routes(client), key=lambda r: r[1] == "/api/auth/logout")
    for method, path, _route in routes:
        if path in PUBLIC_PATHS:
            continue
        body: dict[str, object] | None = {} if method in ("POST", "PATCH", "PUT") else None
        response = client.request(method, _url(path), json=body, headers=headers)
        if role in MATRIX[(method, path)]:
            assert response.status_code not in (401, 403), (
                f"{role.value} refused on {method} {path}: {response.text}"
            )
        else:
            assert response.status_code == 403, f"{role.value} allowed on {method} {path}"
            assert "may not do this" in response.json()["detail"]


def test_websocket_without_or_with_a_bad_token_closes_4401(
    app: tuple[TestClient, Services],
) -> None:
    client, _ = app
    first_messages = ('{"type": "hello"}', '{"type": "auth", "token": "not-a-token"}')
    for first in first_messages:
        with client.websocket_connect("/api/ws/alerts") as ws:
            ws.send_text(first)
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == 4401, first
    with (
        client.websocket_connect("/api/ws/alerts?token=not-a-token") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    assert closed.value.code == 4401


def test_websocket_admits_every_alert_reader(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    for role in WEBSOCKETS["/api/ws/alerts"]:
        with client.websocket_connect("/api/ws/alerts") as ws:
            ws.send_text(json.dumps({"type": "auth", "token": token(client, role)}))
            assert ws.receive_json()["type"] == "snapshot"


def test_mounts_are_public_static_files_only(app: tuple[TestClient, Services]) -> None:
    """The console's /static mount is listed as public and serves its files, nothing else."""
    client, _ = app
    mounts = {route.path for route in client.app.routes if isinstance(route, Mount)}  # type: ignore[attr-defined]
    assert mounts == {"/static"}
    assert mounts <= PUBLIC_PATHS
    index = client.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in index.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    for probe in ("/static/../__init__.py", "/static/%2e%2e/__init__.py", "/static/nothing.js"):
        assert client.get(probe).status_code == 404, probe


def test_openapi_docs_are_off_in_production(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    assert client.get("/openapi.json").status_code == 404
    assert client.get("/docs").status_code == 404


def test_public_health_says_nothing_but_the_status(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() in ({"status": "ok"}, {"status": "degraded"})


def test_path_values_match_the_parameters_of_the_matrix() -> None:
    """Keeps PATH_VALUES in step with the matrix (a stale entry hides a renamed parameter)."""
    used = {m for _, path in MATRIX for m in re.findall(r"\{(\w+)", path)}
    used |= {m for path in WEBSOCKETS for m in re.findall(r"\{(\w+)", path)}
    assert used == set(PATH_VALUES)
