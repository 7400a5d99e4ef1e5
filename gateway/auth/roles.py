"""Who may do what: the gateway's five roles, and the user a request authenticated as."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    GUARD = "guard"
    FACILITIES = "facilities"
    COUNSELLOR = "counsellor"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class CurrentUser:
    id: int
    username: str
    role: Role


def check_role(role: str) -> Role:
    """The Role named ``role``, or ValueError listing the roles."""
    try:
        return Role(role)
    except ValueError:
        raise ValueError(
            f"unknown role {role!r}; use one of: " + ", ".join(r.value for r in Role)
        ) from None
