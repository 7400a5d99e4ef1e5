"""Passwords: argon2id hashes, and what a new password must not be."""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.config import check_secret

MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


@cache
def dummy_hash() -> str:
    """A hash to verify against for unknown users, so they cost as much time as known ones."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash (False for a malformed hash)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with older parameters than the hasher's current ones."""
    return _hasher.check_needs_rehash(password_hash)


def check_password(password: str, *, mode: str, username: str = "") -> str:
    """Refuse weak passwords: short ones, and placeholders outside development mode."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if username and password.strip().lower() == username.strip().lower():
        raise ValueError("password must not be the username")
    check_secret("password", password, mode)
    return password
