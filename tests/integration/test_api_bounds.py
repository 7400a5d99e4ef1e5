"""Integer path and query parameters are bounded in validation: out of range is 422, never 500.

SQLite takes integers of at most 64 bits; a larger id reaching a query makes the driver raise
OverflowError (a 500). The routes are read from the app's OpenAPI document, so a route added
later is checked without being listed here. Also here: datetimes at the ends of the calendar
(a default window computed from them must not overflow), an access cursor carrying an
out-of-range id, and silences whose end would fall past year 9999.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from faces.box import Box
from faces.engine import Detection
from gateway.api import create_app
from gateway.auth.roles import Role
from gateway.enrolment.service import EnrolmentService
from gateway.enrolment.wrong_match import WrongMatchService
from gateway.services import Services
from tests.gatekit import write_key
from tests.gatewaykit import (
    SITE,
    add_device,
    add_person,
    close_services,
    login,
    make_config,
    make_services,
)

INT64_MAX = 2**63 - 1
TOO_LARGE = (2**63, 10**23)
PLACEHOLDER = "zz-none"  # for the other string path parameters of a route under test
# Rows the app fixture creates, so that a route gets past its "not found" to its own work.
KNOWN_PATH_VALUES = {
    "device_key": f"{SITE}/b1/r101/w1",
    "gate_key": f"{SITE}/b1/east",
    "building": "b1",
    "person_id": "s1",
}
# The first and last instants a datetime can hold, also with the widest UTC offsets.
CALENDAR_ENDS = (
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59+14:00",
)
BODY_METHODS = frozenset({"post", "put", "patch"})


# --- an app with every part configured (shared with test_api_schemathesis.py) -----------------


class NoFaceEngine:
    """A face engine that finds no face: the enrolment routes run without loading dlib."""

    def start(self) -> None:
        pass

    def detect(self, frame_bgr: np.ndarray) -> Detection:
        return Detection([], np.ascontiguousarray(frame_bgr[..., ::-1]))

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        return []


class AcceptingPublisher:
    """A broker link that takes every message (kept in memory, delivered nowhere)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self.messages.append((topic, payload))


def full_services(tmp_path: Path) -> Services:
    """Services in development mode (OpenAPI served) with enrolment (and wrong-match feedback)
    and a broker link.

    Without them the enrolment, wrong-match and command routes answer 503 before they validate
    anything, which would hide what they do with their parameters.
    """
    key = write_key(tmp_path / "gallery.key")
    config = make_config(enrolment={"gallery_key": {"file": str(tmp_path / "gallery.key")}})
    assert config.enrolment is not None
    publisher = AcceptingPublisher()
    services = make_services(tmp_path, config=config, publisher=publisher)
    services.enrolment = EnrolmentService(
        services.sessions,
        services.clock,
        config.enrolment,
        config.site,
        NoFaceEngine(),
        publisher,
        key,
        key,
    )
    services.enrolment.start()
    assert services.commands is not None
    services.wrong_match = WrongMatchService(
        services.sessions, services.clock, services.commands, services.enrolment, key, key
    )
    return services


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    # A 500 is returned as a response here, not raised, so the assertion names the route.
    services = full_services(tmp_path_factory.mktemp("bounds"))
    try:
        add_device(services, "r101", "w1")
        add_person(services, "s1")
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            yield client, services
    finally:
        close_services(services)


@pytest.fixture(scope="module")
def admin(app: tuple[TestClient, Services]) -> dict[str, str]:
    client, _ = app
    return login(client, Role.ADMIN)


@pytest.fixture(scope="module")
def callers(app: tuple[TestClient, Services], admin: dict[str, str]) -> dict[str, dict[str, str]]:
    """Headers of the admin and of a student (the student routes admit students only)."""
    client, _ = app
    return {"admin": admin, "student": login(client, Role.STUDENT)}


def _schema_of(parameter: dict[str, Any]) -> dict[str, Any]:
    """The parameter's schema, unwrapping ``anyOf: [X, null]`` of an optional parameter."""
    schema: dict[str, Any] = parameter.get("schema", {})
    for option in schema.get("anyOf", ()):
        if option.get("type") != "null":
            return dict(option)
    return schema


def _parameters(
    client: TestClient, type_: str, format_: str | None = None
) -> list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    """(method, path, parameter, all parameters) for each path/query parameter of that type."""
    document = client.get("/openapi.json").json()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parameters = operation.get("parameters", [])
            for parameter in parameters:
                schema = _schema_of(parameter)
                if (
                    parameter["in"] in ("path", "query")
                    and schema.get("type") == type_
                    and schema.get("format") == format_
                ):
                    found.append((method, path, parameter, parameters))
    return found


def _integer_parameters(
    client: TestClient,
) -> list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    return _parameters(client, "integer")


def _request(
    client: TestClient,
    callers: dict[str, dict[str, str]],
    method: str,
    path: str,
    parameters: list[dict[str, Any]],
    name: str,
    value: int | str,
) -> Any:
    """Call the route with ``name`` set to ``value`` and the other parameters at valid values,
    as a caller the route admits (a student for the student routes, else the admin)."""
    headers = callers["student" if path.startswith("/api/student/") else "admin"]
    path_values: dict[str, str] = {}
    query: dict[str, str] = {}
    for parameter in parameters:
        schema = _schema_of(parameter)
        if parameter["name"] == name:
            given = str(value)
        elif parameter["in"] == "path" and schema.get("type") == "integer":
            given = "1"
        elif parameter["in"] == "path":
            given = KNOWN_PATH_VALUES.get(parameter["name"], PLACEHOLDER)
        else:
            continue  # other query parameters keep their defaults
        (path_values if parameter["in"] == "path" else query)[parameter["name"]] = given
    url = re.sub(r"\{(\w+)\}", lambda m: path_values[m.group(1)], path)
    body: dict[str, Any] | None = {} if method in BODY_METHODS else None
    return client.request(method.upper(), url, params=query, json=body, headers=headers)


def _refuses(response: Any, where: str, name: str) -> bool:
    """True when the answer is a 422 naming this parameter."""
    if response.status_code != 422:
        return False
    detail = response.json()["detail"]
    return isinstance(detail, list) and any(e["loc"][:2] == [where, name] for e in detail)


def test_the_openapi_walk_finds_the_integer_parameters(app: tuple[TestClient, Services]) -> None:
    """Guards the walk itself: the ids and page sizes of the known routes are among its finds."""
    client, _ = app
    found = {(m, p, prm["name"]) for m, p, prm, _ in _integer_parameters(client)}
    assert {
        ("get", "/api/alerts/{alert_id}", "alert_id"),
        ("post", "/api/alerts/{alert_id}/ack", "alert_id"),
        ("delete", "/api/silences/{silence_id}", "silence_id"),
        ("patch", "/api/users/{user_id}", "user_id"),
        ("post", "/api/users/{user_id}/deactivate", "user_id"),
        ("get", "/api/dead-letters", "offset"),
        ("get", "/api/people", "limit"),
    } <= found


def test_every_integer_parameter_declares_a_range_a_64_bit_column_can_hold(
    app: tuple[TestClient, Services],
) -> None:
    client, _ = app
    for method, path, parameter, _ in _integer_parameters(client):
        schema = _schema_of(parameter)
        label = f"{method.upper()} {path} {parameter['name']}"
        assert "minimum" in schema and "maximum" in schema, f"{label} is unbounded: {schema}"
        assert -INT64_MAX - 1 <= schema["minimum"] <= schema["maximum"] <= INT64_MAX, label


def test_integers_beyond_64_bits_and_below_the_minimum_are_422_naming_the_parameter(
    app: tuple[TestClient, Services], callers: dict[str, dict[str, str]]
) -> None:
    client, _ = app
    failures = []
    for method, path, parameter, parameters in _integer_parameters(client):
        name, where = parameter["name"], parameter["in"]
        schema = _schema_of(parameter)
        values = list(TOO_LARGE)
        if schema.get("minimum", -1) >= 0:
            values.append(-1)
        if "minimum" in schema:
            values.append(schema["minimum"] - 1)
        for value in values:
            response = _request(client, callers, method, path, parameters, name, value)
            assert response.status_code < 500, (
                f"{method.upper()} {path} {name}={value}: {response.status_code} {response.text}"
            )
            if not _refuses(response, where, name):
                failures.append(f"{method.upper()} {path} {name}={value}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_the_largest_allowed_value_reaches_the_route_without_a_server_error(
    app: tuple[TestClient, Services], callers: dict[str, dict[str, str]]
) -> None:
    """The bound itself is safe: the maximum is accepted and answers 404 or data, not 500."""
    client, _ = app
    for method, path, parameter, parameters in _integer_parameters(client):
        maximum = _schema_of(parameter).get("maximum")
        if maximum is None:
            continue  # unbounded: the test above reports it
        response = _request(client, callers, method, path, parameters, parameter["name"], maximum)
        assert response.status_code < 500, f"{method.upper()} {path}: {response.text}"
        assert not _refuses(response, parameter["in"], parameter["name"]), (
            f"{method.upper()} {path} refuses its own maximum {maximum}"
        )


def test_datetimes_at_the_ends_of_the_calendar_are_answered_without_a_server_error(
    app: tuple[TestClient, Services], callers: dict[str, dict[str, str]]
) -> None:
    """A default window computed from such a time must not step outside the calendar."""
    client, _ = app
    found = _parameters(client, "string", "date-time")
    assert found, "no date-time parameter found: has the OpenAPI walk broken?"
    for method, path, parameter, parameters in found:
        for value in CALENDAR_ENDS:
            response = _request(client, callers, method, path, parameters, parameter["name"], value)
            assert response.status_code < 500, (
                f"{method.upper()} {path} {parameter['name']}={value}: {response.text}"
            )


def test_an_access_cursor_with_an_id_no_row_can_have_is_refused(
    app: tuple[TestClient, Services], admin: dict[str, str]
) -> None:
    client, _ = app
    for row_id in (2**63, 10**23, 0, -1):
        raw = f"2025-03-01T22:00:00+00:00|{row_id}".encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        response = client.get("/api/access", params={"cursor": cursor}, headers=admin)
        assert response.status_code == 422, (row_id, response.text)
        assert "cursor is not valid" in response.json()["detail"]


def test_a_silence_whose_end_is_beyond_the_calendar_is_422(
    app: tuple[TestClient, Services], admin: dict[str, str]
) -> None:
    client, _ = app
    base = {"originator": f"device:{SITE}/b1", "reason": "service"}
    for body in (
        {**base, "duration_s": 1e300},
        {**base, "duration_s": 10.0**23},
        {**base, "starts_at": "9999-12-31T23:00:00Z", "duration_s": 7200},
    ):
        response = client.post("/api/silences", json=body, headers=admin)
        assert response.status_code == 422, (body, response.text)
