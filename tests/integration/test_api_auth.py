"""Login, throttling, tokens and accounts through the real API over a real SQLite file."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.api import create_app
from gateway.auth.login import login as login_directly
from gateway.auth.roles import Role
from gateway.auth.users import create_user
from gateway.db import open_engine, session_factory
from gateway.db.schema import ApiToken, AuthEvent, User
from gateway.services import Services
from tests.gatewaykit import (
    PASSWORD,
    clock_of,
    close_services,
    ensure_user,
    gateway_client,
    login,
    make_config,
    make_services,
    token,
)

FREE_FAILURES = 2  # api.login_max_failures here: fewer argon2 checks per test


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    config = make_config(api={"login_max_failures": FREE_FAILURES})
    with gateway_client(tmp_path, config=config) as pair:
        yield pair


def _login(client: TestClient, username: str, password: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    return response.status_code, response.json()


def test_login_returns_a_bearer_token_that_identifies_the_user(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    status, body = _login(client, "alice", PASSWORD)
    assert status == 200
    assert body["role"] == "guard" and body["token_type"] == "bearer"
    me = client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "alice" and me.json()["role"] == "guard"


def test_login_is_case_insensitive_on_the_username(app: tuple[TestClient, Services]) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "Alice")
    assert _login(client, "alice", PASSWORD)[0] == 200


def test_wrong_password_and_unknown_user_get_the_same_401(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    wrong = client.post("/api/auth/login", json={"username": "alice", "password": "nope-nope-1"})
    unknown = client.post("/api/auth/login", json={"username": "bob", "password": "nope-nope-1"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "invalid username or password"}


ATTACKER = "203.0.113.66"
OWNER_DESK = "198.51.100.5"


def _from(client: TestClient, address: str) -> TestClient:
    """A client of the same app whose requests come from ``address``."""
    return TestClient(client.app, client=(address, 50000))


def _fail_past_throttles(
    client: TestClient, services: Services, username: str, failures: int
) -> list[int]:
    """Fail ``failures`` logins, waiting out each 429 on the app's clock; the Retry-Afters seen."""
    waits: list[int] = []
    done = 0
    while done < failures:
        response = client.post(
            "/api/auth/login", json={"username": username, "password": "wrong-password-1"}
        )
        if response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
            clock_of(services).advance(waits[-1])
        else:
            assert response.status_code == 401, response.text
            done += 1
    return waits


def test_repeated_failures_from_one_address_get_a_growing_delay_and_429_with_retry_after(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    attacker = _from(client, ATTACKER)
    free = services.config.api.login_max_failures
    for _ in range(free + 1):  # the free ones, then one that starts the wait
        assert _login(attacker, "alice", "wrong-password-1")[0] == 401
    waits = _fail_past_throttles(attacker, services, "alice", 4)
    assert waits == [1, 2, 4, 8]
    # Throttled: not even the right password is checked.
    response = attacker.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "16"
    assert response.json() == {"detail": "too many failed logins; try again in 16 s"}
    clock_of(services).advance(15)
    assert _login(attacker, "alice", PASSWORD)[0] == 429
    clock_of(services).advance(1)
    assert _login(attacker, "alice", PASSWORD)[0] == 200


def test_the_owner_from_another_address_logs_in_while_an_attacker_hammers_the_account(
    app: tuple[TestClient, Services],
) -> None:
    """The denial of service that was the bug: failures from one address kept the owner out."""
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    attacker, owner = _from(client, ATTACKER), _from(client, OWNER_DESK)
    _fail_past_throttles(attacker, services, "alice", FREE_FAILURES + 8)
    assert _login(attacker, "alice", PASSWORD)[0] == 429
    status, body = _login(owner, "alice", PASSWORD)
    assert status == 200 and body["username"] == "alice"
    # The success reset the account's count; once the attacker has run it up again, a typo
    # costs the owner the account's short cap (30 s), not the attacker's five minutes.
    _fail_past_throttles(attacker, services, "alice", FREE_FAILURES + 5)
    assert _login(owner, "alice", "wrong-password-1")[0] == 401
    response = owner.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    clock_of(services).advance(30)
    assert _login(attacker, "alice", "wrong-password-1")[0] == 429  # still waiting its 5 min
    assert _login(owner, "alice", PASSWORD)[0] == 200


def test_unknown_and_known_user_names_are_throttled_alike(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    answers = []
    for address, name in (("203.0.113.1", "alice"), ("203.0.113.2", "no-such-user")):
        other = _from(client, address)
        waits = _fail_past_throttles(
            other, services, name, services.config.api.login_max_failures + 3
        )
        response = other.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        answers.append(
            (waits, response.status_code, response.headers["Retry-After"], response.json())
        )
    assert answers[0] == answers[1]


def test_parallel_attempts_cannot_all_use_the_same_free_turn(
    app: tuple[TestClient, Services],
) -> None:
    """Each attempt is counted before its password check, so a burst gets the free turns only."""
    client, _ = app
    burst = _from(client, ATTACKER)
    statuses: list[int] = []

    def attempt() -> None:
        statuses.append(_login(burst, "alice", "wrong-password-1")[0])

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * (FREE_FAILURES + 1) + [429] * (7 - FREE_FAILURES)


def test_a_success_resets_the_count_of_that_address_and_account(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    desk = _from(client, OWNER_DESK)
    free = services.config.api.login_max_failures
    for _ in range(free):
        assert _login(desk, "alice", "wrong-password-1")[0] == 401
    assert _login(desk, "alice", PASSWORD)[0] == 200
    for _ in range(free + 1):
        assert _login(desk, "alice", "wrong-password-1")[0] == 401
    assert _login(desk, "alice", PASSWORD)[0] == 429


def test_counts_are_forgotten_after_an_hour_without_failures(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    attacker = _from(client, ATTACKER)
    _fail_past_throttles(attacker, services, "alice", FREE_FAILURES + 2)
    assert _login(attacker, "alice", "wrong-password-1")[0] == 429
    clock_of(services).advance(3600)
    for _ in range(services.config.api.login_max_failures + 1):
        assert _login(attacker, "alice", "wrong-password-1")[0] == 401


def test_throttles_are_kept_in_the_database_for_every_replica(
    app: tuple[TestClient, Services], tmp_path: Path
) -> None:
    """A second gateway on the same database (its own engine) sees the same throttle."""
    client, services = app
    _fail_past_throttles(_from(client, ATTACKER), services, "alice", FREE_FAILURES + 2)
    engine = open_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    try:
        replica = dataclasses.replace(services, engine=engine, sessions=session_factory(engine))
        other = TestClient(create_app(replica), client=(ATTACKER, 50000))
        assert _login(other, "alice", PASSWORD)[0] == 429
    finally:
        engine.dispose()


def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(tmp_path: Path) -> None:
    config = make_config(
        api={"trusted_proxies": ["127.0.0.1"], "login_max_failures": FREE_FAILURES}
    )
    with gateway_client(tmp_path, config=config) as (client, _):
        proxy = _from(client, "127.0.0.1")
        forger = _from(client, "203.0.113.99")

        def attempt(via: TestClient, username: str, forwarded: str) -> int:
            response = via.post(
                "/api/auth/login",
                json={"username": username, "password": "wrong-password-1"},
                headers={"X-Forwarded-For": forwarded},
            )
            return response.status_code

        tries = range(FREE_FAILURES + 2)
        statuses = [attempt(proxy, "alice", f"192.0.2.1, {ATTACKER}") for _ in tries]
        assert statuses == [401, 401, 401, 429]  # counted under the address the proxy saw ...
        assert attempt(proxy, "alice", OWNER_DESK) == 401  # ... others behind it may still try
        # From a peer that is no trusted proxy the header is ignored: rotating it gains nothing.
        statuses = [attempt(forger, "bob", f"192.0.2.{i}") for i in tries]
        assert statuses == [401, 401, 401, 429]


def test_admin_sees_and_lifts_a_throttle_and_both_are_audited(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    admin = login(client, Role.ADMIN)
    attacker = _from(client, ATTACKER)
    free = services.config.api.login_max_failures
    _fail_past_throttles(attacker, services, "alice", free + 3)
    listed = client.get("/api/login-throttles", headers=admin)
    assert listed.status_code == 200
    rows = {(r["scope"], r["username"], r["address"]): r for r in listed.json()}
    assert set(rows) == {
        ("address", None, ATTACKER),
        ("account_address", "alice", ATTACKER),
        ("account", "alice", None),
    }
    by_address = rows[("address", None, ATTACKER)]
    assert by_address["failures"] == free + 3 and by_address["delay_s"] == 4
    assert by_address["active"] is True
    until = datetime.fromisoformat(by_address["until"])
    assert until == clock_of(services).now + timedelta(seconds=4)
    only_alice = client.get("/api/login-throttles", headers=admin, params={"username": "ALICE"})
    assert {r["scope"] for r in only_alice.json()} == {"account_address", "account"}
    assert _login(attacker, "alice", PASSWORD)[0] == 429
    for key in (("address", None, ATTACKER), ("account_address", "alice", ATTACKER)):
        lifted = client.delete(f"/api/login-throttles/{rows[key]['id']}", headers=admin)
        assert lifted.status_code == 204
    assert _login(attacker, "alice", PASSWORD)[0] == 200
    gone = client.delete(f"/api/login-throttles/{by_address['id']}", headers=admin)
    assert gone.status_code == 404
    with services.sessions() as session:
        events = list(session.scalars(select(AuthEvent).order_by(AuthEvent.id)))
    started = [
        (e.detail["scope"], e.username, e.address) for e in events if e.action == "login_throttled"
    ]
    assert sorted(started) == [
        ("account", "alice", ATTACKER),
        ("account_address", "alice", ATTACKER),
        ("address", "alice", ATTACKER),
    ]
    lifted_events = [e for e in events if e.action == "throttle_lifted"]
    assert [(e.actor, e.detail["scope"], e.address) for e in lifted_events] == [
        ("admin-user", "address", ATTACKER),
        ("admin-user", "account_address", ATTACKER),
    ]


def test_throttle_audit_names_no_account_that_does_not_exist(
    app: tuple[TestClient, Services],
) -> None:
    """A user name that is no account may be a password typed into the wrong field."""
    client, services = app
    _fail_past_throttles(_from(client, ATTACKER), services, "Tr0ub4dor-typed-here", 4)
    with services.sessions() as session:
        events = list(session.scalars(select(AuthEvent)))
    assert events and all(e.username == "" for e in events)


@pytest.mark.parametrize("role", [Role.GUARD, Role.AUDITOR])
def test_only_admins_may_see_or_lift_throttles(
    app: tuple[TestClient, Services], role: Role
) -> None:
    client, _ = app
    headers = login(client, role)
    assert client.get("/api/login-throttles", headers=headers).status_code == 403
    assert client.delete("/api/login-throttles/1", headers=headers).status_code == 403
    assert client.get("/api/login-throttles").status_code == 401


def test_expired_token_is_refused(app: tuple[TestClient, Services]) -> None:
    client, services = app
    headers = {"Authorization": f"Bearer {token(client, Role.GUARD)}"}
    assert client.get("/api/me", headers=headers).status_code == 200
    clock_of(services).advance(services.config.api.token_ttl_s + 1)
    response = client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_logout_revokes_only_that_token(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    first = {"Authorization": f"Bearer {token(client, Role.GUARD)}"}
    second = {"Authorization": f"Bearer {token(client, Role.GUARD)}"}
    assert client.post("/api/auth/logout", headers=first).status_code == 204
    assert client.get("/api/me", headers=first).status_code == 401
    assert client.get("/api/me", headers=second).status_code == 200


def test_missing_malformed_and_unknown_tokens_get_401(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Bearer x" * 40}).status_code == 401


def test_database_keeps_an_argon2_hash_and_token_digests_only(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    _, body = _login(client, "alice", PASSWORD)
    with services.sessions() as session:
        user = session.scalars(select(User).where(User.username == "alice")).one()
        tokens = list(session.scalars(select(ApiToken)))
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert [t.token_hash for t in tokens] == [hashlib.sha256(body["token"].encode()).hexdigest()]


def test_deactivated_user_is_logged_out_and_cannot_log_in(
    app: tuple[TestClient, Services],
) -> None:
    client, _ = app
    admin = {"Authorization": f"Bearer {token(client, Role.ADMIN)}"}
    guard = {"Authorization": f"Bearer {token(client, Role.GUARD)}"}
    users = client.get("/api/users", headers=admin).json()
    guard_id = next(u["id"] for u in users if u["username"] == "guard-user")
    response = client.post(f"/api/users/{guard_id}/deactivate", headers=admin)
    assert response.status_code == 200 and response.json()["active"] is False
    assert client.get("/api/me", headers=guard).status_code == 401
    assert _login(client, "guard-user", PASSWORD)[0] == 401


def test_admin_creates_a_user_and_resets_a_password_which_revokes_tokens(
    app: tuple[TestClient, Services],
) -> None:
    client, _ = app
    admin = {"Authorization": f"Bearer {token(client, Role.ADMIN)}"}
    created = client.post(
        "/api/users",
        headers=admin,
        json={"username": "carol", "password": PASSWORD, "role": "counsellor"},
    )
    assert created.status_code == 201, created.text
    assert "password" not in created.text and "hash" not in created.text
    user_id = created.json()["id"]
    carol = {"Authorization": f"Bearer {_login(client, 'carol', PASSWORD)[1]['token']}"}
    new_password = "another-long-passphrase-7"
    reset = client.post(
        f"/api/users/{user_id}/password", headers=admin, json={"password": new_password}
    )
    assert reset.status_code == 204
    assert client.get("/api/me", headers=carol).status_code == 401
    assert _login(client, "carol", PASSWORD)[0] == 401
    assert _login(client, "carol", new_password)[0] == 200
    taken = client.post(
        "/api/users",
        headers=admin,
        json={"username": "CAROL", "password": PASSWORD, "role": "guard"},
    )
    assert taken.status_code == 409


def test_role_change_takes_effect_at_once(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    admin = {"Authorization": f"Bearer {token(client, Role.ADMIN)}"}
    guard = {"Authorization": f"Bearer {token(client, Role.GUARD)}"}
    guard_id = client.get("/api/me", headers=guard).json()["id"]
    assert client.get("/api/occupancy", headers=guard).status_code == 200
    patched = client.patch(f"/api/users/{guard_id}", headers=admin, json={"role": "facilities"})
    assert patched.status_code == 200 and patched.json()["role"] == "facilities"
    # The old token was revoked by the role change.
    assert client.get("/api/occupancy", headers=guard).status_code == 401


def test_the_last_admin_cannot_be_deactivated_or_demoted(
    app: tuple[TestClient, Services],
) -> None:
    client, _ = app
    admin = {"Authorization": f"Bearer {token(client, Role.ADMIN)}"}
    admin_id = client.get("/api/me", headers=admin).json()["id"]
    assert client.post(f"/api/users/{admin_id}/deactivate", headers=admin).status_code == 409
    demote = client.patch(f"/api/users/{admin_id}", headers=admin, json={"role": "guard"})
    assert demote.status_code == 409 and "last active admin" in demote.json()["detail"]


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 10"), ("change-me", "at least 10"), ("password12", "placeholder")],
)
def test_weak_passwords_are_refused_in_production(
    tmp_path: Path, password: str, message: str
) -> None:
    services = make_services(tmp_path, mode="production")
    try:
        with services.sessions.begin() as session, pytest.raises(ValueError, match=message):
            create_user(session, "dave", password, "guard", mode="production")
    finally:
        close_services(services)


def test_placeholder_password_is_refused_in_production_but_allowed_in_development(
    tmp_path: Path,
) -> None:
    placeholder = "dormguard"  # in PLACEHOLDER_SECRETS, padded below to pass the length check
    services = make_services(tmp_path, mode="production")
    try:
        with services.sessions.begin() as session:
            with pytest.raises(ValueError, match="placeholder"):
                create_user(session, "dave", placeholder + "-x", "guard", mode="production")
            with pytest.raises(ValueError, match="placeholder"):
                create_user(session, "erin", "changeme  ", "guard", mode="production")
            create_user(session, "frank", "changeme12", "guard", mode="development")
    finally:
        close_services(services)


def test_placeholder_password_through_the_api_in_production_is_422(tmp_path: Path) -> None:
    with gateway_client(tmp_path, mode="production") as (client, _):
        admin = {"Authorization": f"Bearer {token(client, Role.ADMIN)}"}
        response = client.post(
            "/api/users",
            headers=admin,
            json={"username": "dave", "password": "password12", "role": "guard"},
        )
        assert response.status_code == 422
        assert "placeholder" in response.json()["detail"]


def test_passwords_and_tokens_never_reach_the_logs(
    app: tuple[TestClient, Services], caplog: pytest.LogCaptureFixture
) -> None:
    client, services = app
    caplog.set_level(logging.DEBUG)
    ensure_user(services, Role.GUARD, "alice")
    _, body = _login(client, "alice", PASSWORD)
    _login(client, "alice", "wrong-password-1")
    client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    result = login_directly(services, "alice", PASSWORD)
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in (PASSWORD, "wrong-password-1", body["token"], result.token):
        assert secret not in text


def test_a_hash_with_outdated_parameters_is_replaced_on_login(
    app: tuple[TestClient, Services],
) -> None:
    from argon2 import PasswordHasher

    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with services.sessions.begin() as session:
        user = session.scalars(select(User).where(User.username == "alice")).one()
        user.password_hash = weak
    assert _login(client, "alice", PASSWORD)[0] == 200
    with services.sessions() as session:
        stored = session.scalars(select(User).where(User.username == "alice")).one().password_hash
    assert stored != weak and stored.startswith("$argon2id$")
    assert _login(client, "alice", PASSWORD)[0] == 200
