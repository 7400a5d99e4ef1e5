"""Encrypted snapshots of denied or unknown attempts, off by default and deleted after retention.

A snapshot file is ``<UTC yyyymmddTHHMMSSZ>_<event_id>.snap`` holding
``b"DGS1" + nonce(12) + AES-256-GCM(jpeg + tag)``. The associated data is the magic plus the
file name, so a snapshot cannot be passed off as another event's by renaming it.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

MAGIC = b"DGS1"
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32
SUFFIX = ".snap"

_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_NAME = re.compile(r"(\d{8}T\d{6}Z)_([A-Za-z0-9][A-Za-z0-9_-]{0,127})\.snap")
_TMP_PREFIX = ".snap-"
_TMP_SUFFIX = ".tmp"


class SnapshotError(Exception):
    """A snapshot file cannot be read: corrupt, truncated, wrong key or tampered."""


class SnapshotStore:
    """Directory of encrypted snapshots with time-based retention."""

    def __init__(
        self, directory: Path, *, key: bytes, retention_s: float, enabled: bool = False
    ) -> None:
        self._directory = directory
        self._key = key
        self._retention_s = retention_s
        self._enabled = enabled

    @property
    def enabled(self) -> bool:
        """Whether save() keeps snapshots at all."""
        return self._enabled

    @property
    def directory(self) -> Path:
        """Where snapshot files live."""
        return self._directory

    def save(self, jpeg: bytes, event_id: str, at: datetime) -> Path | None:
        """Encrypt and store one snapshot; returns its path, or None when snapshots are off."""
        _require_aware(at, "at")
        if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
            raise ValueError(
                f"invalid event_id {event_id!r}: use 1-128 letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        if not isinstance(jpeg, bytes) or not jpeg:
            raise ValueError("snapshot image must be non-empty bytes")
        if not self._enabled:
            return None
        aesgcm = _aesgcm(self._key)
        name = f"{at.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)}_{event_id}{SUFFIX}"
        nonce = os.urandom(NONCE_SIZE)
        blob = MAGIC + nonce + aesgcm.encrypt(nonce, jpeg, _aad(name))
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=self._directory, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX
        )  # mkstemp creates the file 0600
        tmp = Path(tmp_name)
        path = self._directory / name
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        logger.info("saved snapshot for event %s at %s", event_id, path)
        return path

    def load(self, path: Path) -> bytes:
        """Decrypt one snapshot file and return the JPEG bytes."""
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise SnapshotError(f"cannot read snapshot file {path}: {exc.strerror}") from None
        minimum = len(MAGIC) + NONCE_SIZE + TAG_SIZE
        if len(blob) < minimum:
            raise SnapshotError(
                f"corrupt snapshot file {path}: truncated: {len(blob)} bytes, need at least "
                f"{minimum}"
            )
        if blob[: len(MAGIC)] != MAGIC:
            raise SnapshotError(f"corrupt snapshot file {path}: bad magic, expected {MAGIC!r}")
        nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_SIZE]
        try:
            return _aesgcm(self._key).decrypt(
                nonce, blob[len(MAGIC) + NONCE_SIZE :], _aad(path.name)
            )
        except InvalidTag:
            raise SnapshotError(f"wrong key, renamed or tampered snapshot file {path}") from None

    def purge(self, now: datetime) -> int:
        """Delete snapshots older than the retention period; returns how many were deleted."""
        _require_aware(now, "now")
        if not self._retention_s > 0:
            raise ValueError(f"retention_s must be > 0, got {self._retention_s}")
        cutoff = now - timedelta(seconds=self._retention_s)
        try:
            entries = list(self._directory.iterdir())
        except FileNotFoundError:
            return 0
        deleted = 0
        for path in entries:
            taken = _taken_at(path)
            if taken is None or taken >= cutoff:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("cannot delete expired snapshot %s: %s", path, exc.strerror)
                continue
            deleted += 1
        if deleted:
            logger.info(
                "purged %s snapshots older than %s from %s", deleted, cutoff, self._directory
            )
        return deleted


def _taken_at(path: Path) -> datetime | None:
    """When a snapshot was taken: from its name, else its mtime; None for files not ours."""
    name = path.name
    is_leftover = name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)
    if not (name.endswith(SUFFIX) or is_leftover):
        return None
    match = _NAME.fullmatch(name)
    if match:
        try:
            return datetime.strptime(match.group(1), _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            pass  # digits that are not a real date: fall back to mtime
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return datetime.fromtimestamp(st.st_mtime, UTC)


def _aad(name: str) -> bytes:
    return MAGIC + name.encode("utf-8")


def _aesgcm(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError(f"snapshot key must be {KEY_SIZE} bytes")
    return AESGCM(key)


def _require_aware(moment: datetime, name: str) -> None:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
