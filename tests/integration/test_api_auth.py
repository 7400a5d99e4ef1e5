"""Login, tokens and accounts through the real API over a real SQLite file."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.api.auth import create_user, login
from gateway.api.deps import Role
from gateway.db.schema import ApiToken, User
from gateway.services import Services
from tests.gatewaykit import (
    PASSWORD,
    clock_of,
    close_services,
    ensure_user,
    gateway_client,
    make_services,
    token,
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    with gateway_client(tmp_path) as pair:
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


def test_lockout_after_max_failures_within_15_minutes_then_unlocks(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    limit = services.config.api.login_max_failures
    for _ in range(limit - 1):
        assert _login(client, "alice", "wrong-password-1")[0] == 401
    status, body = _login(client, "alice", "wrong-password-1")
    assert status == 429 and "too many failed logins" in body["detail"]
    # Locked: even the right password is refused, with a Retry-After.
    response = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60 + 1
    clock_of(services).advance(15 * 60 + 1)
    assert _login(client, "alice", PASSWORD)[0] == 200


def test_failures_spread_over_more_than_15_minutes_do_not_lock(
    app: tuple[TestClient, Services],
) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    limit = services.config.api.login_max_failures
    for _ in range(limit - 1):
        assert _login(client, "alice", "wrong-password-1")[0] == 401
    clock_of(services).advance(16 * 60)
    assert _login(client, "alice", "wrong-password-1")[0] == 401  # a new window starts
    assert _login(client, "alice", PASSWORD)[0] == 200


def test_success_resets_the_failure_count(app: tuple[TestClient, Services]) -> None:
    client, services = app
    ensure_user(services, Role.GUARD, "alice")
    limit = services.config.api.login_max_failures
    for _ in range(limit - 1):
        _login(client, "alice", "wrong-password-1")
    assert _login(client, "alice", PASSWORD)[0] == 200
    for _ in range(limit - 1):
        assert _login(client, "alice", "wrong-password-1")[0] == 401


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
    result = login(services, "alice", PASSWORD)
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
