"""Who may do what: the gateway's six roles, and the user a request authenticated as.

Five are staff roles; ``student`` is a resident who sees only their own data (their record,
their building's service rooms) through /api/student.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    GUARD = "guard"
    FACILITIES = "facilities"
    COUNSELLOR = "counsellor"
    AUDITOR = "auditor"
    STUDENT = "student"


STAFF_ROLES = frozenset(r for r in Role if r is not Role.STUDENT)


@dataclass(frozen=True, slots=True)
class CurrentUser:
    id: int
    username: str
    role: Role
    person_id: str | None = None  # the student's own person (students only)


def check_role(role: str) -> Role:
    """The Role named ``role``, or ValueError listing the roles."""
    try:
        return Role(role)
    except ValueError:
        raise ValueError(
            f"unknown role {role!r}; use one of: " + ", ".join(r.value for r in Role)
        ) from None
