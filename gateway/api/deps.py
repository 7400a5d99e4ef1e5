"""FastAPI dependencies shared by every router: the services, the caller and their role.

Every route declares who may call it with ``require(Role.X, ...)``; admin may call everything.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from gateway.auth.roles import CurrentUser, Role
from gateway.auth.tokens import authenticate
from gateway.services import Services


def get_services(request: Request) -> Services:
    """The Services the app was created with."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_bearer = HTTPBearer(auto_error=False)


def get_session(services: ServicesDep) -> Any:
    """One SQL session per request, closed afterwards."""
    with services.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def current_user(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CurrentUser:
    """The caller, from the bearer token; 401 when missing, unknown, expired or revoked."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: log in at POST /api/auth/login",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = authenticate(services, credentials.credentials)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or expired token: log in again",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def _admitted(user: CurrentUser, allowed: frozenset[Role]) -> CurrentUser:
    """The user when their role is allowed; 403 naming the roles allowed otherwise."""
    if user.role not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {user.role.value!r} may not do this; allowed: "
            + ", ".join(sorted(r.value for r in allowed)),
        )
    return user


def require(*roles: Role) -> Any:
    """A dependency admitting the given roles (and admin); 403 names the roles allowed."""
    allowed = frozenset((*roles, Role.ADMIN))

    def check(user: Annotated[CurrentUser, Depends(current_user)]) -> CurrentUser:
        return _admitted(user, allowed)

    check.allowed_roles = allowed  # type: ignore[attr-defined]  # read by the role-matrix test
    return Depends(check)


def require_student() -> Any:
    """A dependency admitting students only: the student routes show the caller's own data,
    which an admin (or any staff account) does not have."""
    allowed = frozenset({Role.STUDENT})

    def check(user: Annotated[CurrentUser, Depends(current_user)]) -> CurrentUser:
        return _admitted(user, allowed)

    check.allowed_roles = allowed  # type: ignore[attr-defined]  # read by the role-matrix test
    return Depends(check)


def require_or_scrape_token(*roles: Role) -> Any:
    """As ``require``, but the site's scrape token (``api.metrics_token``) is accepted too.

    Prometheus scrapes unattended: a user's login token would expire. The scrape token opens
    only the routes that declare this dependency (/metrics).
    """
    allowed = frozenset((*roles, Role.ADMIN))

    def check(
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> CurrentUser:
        expected = services.metrics_token
        if (
            expected
            and credentials is not None
            and credentials.scheme.lower() == "bearer"
            and hmac.compare_digest(credentials.credentials.encode(), expected.encode())
        ):
            return CurrentUser(0, "metrics-scraper", Role.AUDITOR)
        user = current_user(services, credentials)
        return _admitted(user, allowed)

    check.allowed_roles = allowed  # type: ignore[attr-defined]  # read by the role-matrix test
    return Depends(check)


RoleCheck = Callable[..., CurrentUser]
