"""Per-account passwords and the mosquitto password file (PBKDF2-SHA512 hashes)."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
from pathlib import Path


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = 101) -> str:
    """A mosquitto 2.0 password hash ($7$: PBKDF2-SHA512), as mosquitto_passwd writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_private(path: Path, text: str) -> None:
    """Write a file that only its owner can read (created 0600, never world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def client_password(path: Path, rotate: bool) -> tuple[str, bool]:
    """(password, created): the stored password, or a new random one."""
    if path.exists() and not rotate:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value, False
    value = secrets.token_urlsafe(24)
    write_private(path, value + "\n")
    return value, True


def write_password_file(path: Path, users: list[tuple[str, str]], passwd_tool: str | None) -> str:
    """Write the hashed mosquitto password file; returns how it was hashed."""
    plain = "".join(f"{user}:{password}\n" for user, password in users)
    tmp = path.with_name(path.name + ".new")
    write_private(tmp, plain)
    try:
        if passwd_tool:
            # -U hashes a plain file in place: passwords never appear on a command line.
            result = subprocess.run(
                [passwd_tool, "-U", str(tmp)], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise RuntimeError(f"mosquitto_passwd -U failed: {result.stderr.strip()}")
            how = "mosquitto_passwd -U"
        else:
            write_private(tmp, "".join(f"{u}:{mosquitto_hash(p)}\n" for u, p in users))
            how = "built-in PBKDF2-SHA512 ($7$)"
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    path.chmod(0o600)
    return how
