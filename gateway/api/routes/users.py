"""Gateway accounts (admin only): create, change role, deactivate, reset a password."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.api.common import In, Out, RowIdPath, conflict, not_found
from gateway.api.deps import ServicesDep, require
from gateway.attributes import from_attributes
from gateway.auth import users as accounts
from gateway.auth.roles import CurrentUser, Role
from gateway.auth.tokens import revoke_all
from gateway.db.schema import User

router = APIRouter(prefix="/api/users", tags=["users"])

Admin = Annotated[CurrentUser, require()]


class UserOut(Out):
    id: int
    username: str
    display_name: str
    role: Role
    active: bool
    created_at: datetime
    last_login_at: datetime | None
    # Accounts are never locked since decision 0007 (failed logins are throttled instead, see
    # /api/login-throttles); the two fields stay so that existing clients keep working.
    locked: bool = Field(
        description="always false: accounts are no longer locked (docs/decisions/0007)",
        deprecated=True,
    )
    locked_until: datetime | None = Field(description="always null (see locked)", deprecated=True)


class UserCreateIn(In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role
    display_name: str = Field(default="", max_length=128)


class UserPatchIn(In):
    display_name: str | None = Field(default=None, max_length=128)
    role: Role | None = None
    active: bool | None = None


class PasswordIn(In):
    password: str = Field(min_length=1, max_length=1024)


def _out(user: User, services: ServicesDep) -> UserOut:
    now = services.clock()
    locked = accounts.is_locked(user, services.config.api.login_max_failures, now)
    return from_attributes(
        UserOut,
        user,
        role=Role(user.role),
        locked=locked,
        locked_until=user.locked_until if locked else None,
    )


def _get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        not_found(f"no user with id {user_id}")
    return user


_STUDENT_ACCOUNTS = (
    "student accounts belong to a person: issue one at POST /api/people/{person_id}/student-account"
)


def _no_student_role(role: Role | None, user: User | None = None) -> None:
    """Student accounts are made and kept by the people API (they carry their person)."""
    if role is Role.STUDENT or (
        user is not None and user.role == Role.STUDENT.value and role not in (None, Role.STUDENT)
    ):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _STUDENT_ACCOUNTS)


def _keep_an_admin(session: Session, user: User) -> None:
    """Refuse to demote or deactivate the last active admin (nobody could manage users)."""
    if user.role != Role.ADMIN.value or not user.active:
        return
    admins = session.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True))
    )
    if (admins or 0) <= 1:
        conflict(f"{user.username!r} is the last active admin; create another admin first")


@router.get("", response_model=list[UserOut])
def list_users(_admin: Admin, services: ServicesDep) -> list[UserOut]:
    """Every account, active or not."""
    with services.sessions() as session:
        return [_out(u, services) for u in session.scalars(select(User).order_by(User.username))]


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreateIn, admin: Admin, services: ServicesDep) -> UserOut:
    """Create a staff account; weak or placeholder passwords are refused."""
    _no_student_role(body.role)
    with services.sessions.begin() as session:
        try:
            user = accounts.create_user(
                session,
                body.username,
                body.password,
                body.role.value,
                display_name=body.display_name,
                mode=services.config.mode,
                now=services.clock(),
            )
        except accounts.UsernameTakenError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        return _out(user, services)


@router.patch("/{user_id}", response_model=UserOut)
def update_user(
    user_id: RowIdPath, body: UserPatchIn, admin: Admin, services: ServicesDep
) -> UserOut:
    """Change a display name, role or active flag; a role change or deactivation logs them out."""
    with services.sessions.begin() as session:
        user = _get(session, user_id)
        if body.role is not None and body.role.value != user.role:
            _no_student_role(body.role, user)
        demoted = body.role is not None and body.role.value != user.role
        deactivated = body.active is False and user.active
        if demoted or deactivated:
            _keep_an_admin(session, user)
        if body.display_name is not None:
            user.display_name = body.display_name
        if body.role is not None:
            user.role = body.role.value
        if body.active is not None:
            user.active = body.active
        if demoted or deactivated:
            revoke_all(session, user.id)
        return _out(user, services)


@router.post("/{user_id}/deactivate", response_model=UserOut)
def deactivate_user(user_id: RowIdPath, admin: Admin, services: ServicesDep) -> UserOut:
    """Deactivate an account and revoke its tokens (the account and its history stay)."""
    with services.sessions.begin() as session:
        user = _get(session, user_id)
        _keep_an_admin(session, user)
        user.active = False
        revoke_all(session, user.id)
        return _out(user, services)


@router.post("/{user_id}/password", status_code=status.HTTP_204_NO_CONTENT)
def reset_password(
    user_id: RowIdPath, body: PasswordIn, admin: Admin, services: ServicesDep
) -> Response:
    """Set a new password and log the user out everywhere (it lifts no login throttle)."""
    with services.sessions.begin() as session:
        user = _get(session, user_id)
        try:
            accounts.set_password(session, user, body.password, mode=services.config.mode)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
