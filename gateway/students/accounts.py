"""Student accounts: the student id as username, a one-time sign-in code the admin hands over.

The code is random, shown once (printed on the enrolment slip) and stored only as its argon2
hash; the student may replace it with a password of their own (POST /api/me/password). Issuing
again replaces the code and signs the student out everywhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.auth import users as accounts
from gateway.auth.roles import Role
from gateway.db.schema import Person, User

# No 0/O, 1/l/I: the code is read off paper and typed on a phone.
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CODE_GROUPS, CODE_GROUP_LENGTH = 3, 4


class NotAStudentError(ValueError):
    """The person is not a student (staff and visitors get no student page)."""


@dataclass(frozen=True, slots=True)
class IssuedAccount:
    user_id: int
    username: str
    code: str  # shown once; only its hash is kept
    created: bool  # False: an existing account got a new code


def sign_in_code() -> str:
    """A random code like 'k7dq-m3xa-p9tf' (about 59 bits)."""
    return "-".join(
        "".join(secrets.choice(_CODE_ALPHABET) for _ in range(CODE_GROUP_LENGTH))
        for _ in range(CODE_GROUPS)
    )


def issue_student_account(
    session: Session, person: Person, *, mode: str, now: datetime
) -> IssuedAccount:
    """Create the student's account, or give the existing one a new code (and reactivate it).

    ``UsernameTakenError`` when a staff account already has the student id as its name.
    """
    if person.kind != "student":
        raise NotAStudentError(
            f"{person.person_id!r} is a {person.kind}, not a student: student accounts are "
            "for students only"
        )
    code = sign_in_code()
    user = session.scalar(select(User).where(User.person_id == person.person_id))
    if user is None:
        user = accounts.create_user(
            session,
            person.person_id,
            code,
            Role.STUDENT.value,
            display_name=person.name,
            mode=mode,
            now=now,
            person_id=person.person_id,
        )
        return IssuedAccount(user.id, user.username, code, created=True)
    accounts.set_password(session, user, code, mode=mode)
    user.active = True
    return IssuedAccount(user.id, user.username, code, created=False)
