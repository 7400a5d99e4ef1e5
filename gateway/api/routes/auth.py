"""Login, logout and the caller's own account."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field

from gateway.api.common import In, Out
from gateway.api.deps import ServicesDep, SessionDep, require
from gateway.auth import addresses, tokens
from gateway.auth.login import LoginError, LoginThrottledError
from gateway.auth.login import login as password_login
from gateway.auth.passwords import check_password
from gateway.auth.roles import CurrentUser, Role
from gateway.auth.users import set_password
from gateway.db.schema import User

router = APIRouter(tags=["auth"])

_bearer = HTTPBearer(auto_error=False)
AnyRole = Annotated[CurrentUser, require(*Role)]


class LoginIn(In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(Out):
    token: str = Field(description="send as 'Authorization: Bearer <token>'")
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_at: datetime
    username: str
    role: Role


class MeOut(Out):
    id: int
    username: str
    display_name: str
    role: Role
    person_id: str | None = Field(default=None, description="a student's own person")


def client_address(request: Request, services: ServicesDep) -> str | None:
    """The address a request comes from (X-Forwarded-For only behind ``api.trusted_proxies``)."""
    return addresses.client_address(
        request.client.host if request.client is not None else None,
        request.headers.getlist("x-forwarded-for"),
        services.config.api.trusted_proxies,
    )


ClientAddress = Annotated[str | None, Depends(client_address)]


@router.post(
    "/api/auth/login",
    response_model=LoginOut,
    responses={
        401: {"description": "wrong credentials"},
        429: {"description": "too many failed logins lately: wait Retry-After seconds"},
    },
)
def login(body: LoginIn, services: ServicesDep, address: ClientAddress) -> LoginOut:
    """Exchange a username and password for a bearer token."""
    try:
        result = password_login(services, body.username, body.password, address)
    except LoginThrottledError as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(exc),
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from None
    except LoginError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    return LoginOut(
        token=result.token,
        expires_at=result.expires_at,
        username=result.user.username,
        role=result.user.role,
    )


@router.post("/api/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(
    _user: AnyRole,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """Revoke the token this request carries."""
    if credentials is not None:
        tokens.logout(services, credentials.credentials)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class PasswordChangeIn(In):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


@router.post(
    "/api/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: {"description": "the current password is wrong"},
        429: {"description": "too many wrong passwords lately: wait Retry-After seconds"},
    },
)
def change_own_password(
    body: PasswordChangeIn, user: AnyRole, services: ServicesDep, address: ClientAddress
) -> Response:
    """Replace the caller's own password (e.g. a student's one-time code); every token of
    theirs, this one included, is revoked: log in again with the new password.

    The current password is checked as a login is, throttled alike: a stolen token cannot be
    used to guess the password behind it faster than the login page allows.
    """
    try:  # a weak new password is refused before the current one is tried
        check_password(body.new_password, mode=services.config.mode, username=user.username)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    try:
        password_login(services, user.username, body.current_password, address)
    except LoginThrottledError as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(exc),
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from None
    except LoginError:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is wrong") from None
    with services.sessions.begin() as session:
        row = session.get(User, user.id)
        if row is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "your account is gone")
        try:
            set_password(session, row, body.new_password, mode=services.config.mode)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/me", response_model=MeOut)
def me(user: AnyRole, session: SessionDep) -> MeOut:
    """The caller's account."""
    row = session.get(User, user.id)
    return MeOut(
        id=user.id,
        username=user.username,
        display_name=row.display_name if row is not None else "",
        role=user.role,
        person_id=user.person_id,
    )
