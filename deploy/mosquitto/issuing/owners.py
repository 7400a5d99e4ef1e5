"""Who owns the issued files: user and group specs as numeric ids, and chown."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from .inventory import InventoryError


def parse_owner(spec: str) -> tuple[int, int]:
    """'uid[:gid]' or 'user[:group]' as numeric ids."""
    user, _, group = spec.partition(":")
    try:
        uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        else:
            gid = uid if user.isdigit() else pwd.getpwnam(user).pw_gid
    except KeyError:
        raise InventoryError(f"unknown user or group in {spec!r}") from None
    return uid, gid


def resolve_broker_owner(spec: str | None) -> tuple[int, int] | None:
    """--broker-owner as ids: 'auto' is the mosquitto user when run as root; None for 'none'."""
    if spec in (None, "none"):
        return None
    if spec != "auto":
        return parse_owner(spec)
    if os.geteuid() != 0:
        return None
    try:
        return parse_owner("mosquitto")
    except InventoryError:
        return None  # no such user here: leave the files to root


def chown_tree(path: Path, owner: tuple[int, int]) -> None:
    """Give a folder and the files directly in it to owner (uid, gid)."""
    os.chown(path, *owner)
    for child in path.iterdir():
        os.chown(child, *owner)
