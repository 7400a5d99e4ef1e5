"""Property-based API test: no request an admin or a counsellor can make gets a 5xx answer.

Schemathesis reads the app's OpenAPI document and sends generated requests (valid and invalid)
to the ASGI app in-process, over a real SQLite file with a few rows of each kind. Only the
"not a server error" check runs: the role matrix and the route tests judge the 4xx answers.

Every operation of the document is sent to, as an admin; as a counsellor, those the role may
call. Left out: the alert WebSocket (/api/ws/alerts) and the console's static files, which
the document does not describe (test_api_roles.py and test_api_alerts.py cover them), and
fuzzing the bearer token itself (test_api_auth.py does). Each generated request runs against
the state the earlier ones left; only the caller's own account is put back (see restore).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from sqlalchemy import select, update

from gateway.alerts.types import AlertType, Severity
from gateway.api import create_app
from gateway.auth.roles import Role
from gateway.db.schema import ApiToken, User
from gateway.services import Services
from tests.gatewaykit import (
    SITE,
    add_access,
    add_dead_letter,
    add_device,
    add_person,
    add_presence,
    clock_of,
    close_services,
    ensure_user,
    signal,
    token,
)
from tests.integration.test_api_bounds import full_services

# Valid and as many invalid requests per operation: small enough that the file runs in well
# under a minute on two shared cores. test_api_bounds.py tries the integer and calendar
# boundaries deterministically; hypothesis rarely draws them in so few examples.
MAX_EXAMPLES = 6
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # SQLite on a busy machine: timing says nothing about correctness here
    database=None,  # no .hypothesis directory in the working tree
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases on every run: a failure reproduces
)


@dataclass(frozen=True)
class Caller:
    """A logged-in account whose token every generated request carries."""

    user_id: int
    role: Role
    headers: dict[str, str]


@dataclass(frozen=True)
class Api:
    app: FastAPI
    services: Services
    callers: dict[Role, Caller]

    def restore(self, caller: Caller) -> None:
        """Undo what an earlier case did to the caller's own account (deactivated, demoted,
        password reset, logged out): otherwise every later case would be a mere 401.

        The token is never given up, so a changed password or a login throttle does not matter.
        """
        with self.services.sessions.begin() as session:
            session.execute(
                update(User)
                .where(User.id == caller.user_id)
                .values(active=True, role=caller.role.value)
            )
            session.execute(
                update(ApiToken).where(ApiToken.user_id == caller.user_id).values(revoked=False)
            )


def _seed(services: Services) -> None:
    """A few rows of each kind, so generated small ids and filters also find something."""
    now = clock_of(services).now
    counsellor = ensure_user(services, Role.COUNSELLOR)
    add_person(services, "s1", counsellor=counsellor)
    add_person(services, "s2", buildings=["b2"])
    add_presence(services, "s1", since=now - timedelta(hours=3))
    for minutes in (5, 10, 15):
        add_access(services, ts=now - timedelta(minutes=minutes))
    add_device(services, "r101", "w1", history=[(now - timedelta(hours=1), "running")])
    add_dead_letter(services, f"dormguard/v1/{SITE}/b1/gate/east/event", b"\xff{", "not JSON")
    services.alerts.apply(
        [
            signal(at=now),
            signal(
                AlertType.WELFARE,
                "person:s1/no_exit",
                severity=Severity.WARNING,
                title="s1 has not left for 3 days",
                detail={"person_id": "s1", "kind": "no_exit", "instance": "x"},
                at=now,
            ),
        ]
    )
    services.alerts.create_silence(
        f"device:{SITE}/b1", [], now, now + timedelta(hours=1), "service", "admin-user"
    )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    services = full_services(tmp_path_factory.mktemp("schemathesis"))
    try:
        _seed(services)
        app = create_app(services)
        with TestClient(app) as client:
            callers = {}
            for role in (Role.ADMIN, Role.COUNSELLOR):
                headers = {"Authorization": f"Bearer {token(client, role)}"}
                name = ensure_user(services, role)
                with services.sessions() as session:
                    user_id = session.scalar(select(User.id).where(User.username == name))
                assert user_id is not None
                callers[role] = Caller(user_id, role, headers)
        yield Api(app, services, callers)
    finally:
        close_services(services)


@pytest.fixture(scope="module")
def api_schema(api: Api) -> BaseSchema:
    # The bearer token is not fuzzed: invalid data would otherwise often mean "no token", a 401
    # before any parameter is read. test_api_roles.py and test_api_auth.py cover the token.
    config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
    return schemathesis.openapi.from_asgi("/openapi.json", api.app, config=config)


def _routes_open_to(app: FastAPI, role: Role) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of the routes the role may call, public ones included."""
    routes = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        declared = [
            allowed
            for d in route.dependant.dependencies
            if (allowed := getattr(d.call, "allowed_roles", None)) is not None  # deps.require
        ]
        if not declared or role in declared[0]:
            routes |= {(method, str(context.path_format)) for method in context.methods or ()}
    return routes


def _server_error(
    api: Api, caller: Caller, operation: APIOperation, mode: GenerationMode
) -> str | None:
    """Generate and send requests to one operation; the first 5xx (shrunk) and its request."""
    sent: list[Case] = []

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: Case) -> None:
        api.restore(caller)
        sent[:] = [case]
        response = case.call(headers=caller.headers)
        case.validate_response(response, checks=[not_a_server_error])

    try:
        send()
    except Unsatisfiable:
        return None  # negative mode, and the operation takes no input to make invalid
    except (Exception, FailureGroup) as exc:  # the app's own exception, or a 5xx answer
        request = sent[-1].as_curl_command(headers=caller.headers) if sent else "?"
        return f"{operation.label} ({mode.value}): {exc!r}\n    {request}"
    return None


def _fuzz(api: Api, api_schema: BaseSchema, role: Role) -> list[str]:
    """Each operation the role may call, with valid and invalid data: what answered 5xx."""
    caller = api.callers[role]
    # Elsewhere the role check answers 403 before any parameter is read (test_api_roles.py).
    open_to_role = _routes_open_to(api.app, role)
    failures: list[str] = []
    tried = 0
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the OpenAPI document has an invalid operation: {result.err()}")
            continue
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in open_to_role:
            continue
        tried += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _server_error(api, caller, operation, mode)
            if failure is not None:
                failures.append(failure)
    assert tried > 3, f"{tried} operations tried: do the OpenAPI paths still match the routes?"
    return failures


# Not with schemathesis.pytest.from_fixture + @schema.parametrize: in schemathesis 4.32 that
# path sets pytest's private Node._nodeid, which pytest 9.2 no longer has (AttributeError).
# The documented Operation.as_strategy() with @given does the same generation in a plain test.
@pytest.mark.parametrize("role", [Role.ADMIN, Role.COUNSELLOR], ids=["admin", "counsellor"])
def test_no_generated_request_gets_a_server_error(
    api: Api, api_schema: BaseSchema, role: Role
) -> None:
    """Admins reach every route; counsellors read through scope filters (other queries)."""
    failures = _fuzz(api, api_schema, role)
    assert not failures, "\n".join(failures)
