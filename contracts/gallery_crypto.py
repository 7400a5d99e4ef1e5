"""The gallery's encryption (AES-256-GCM) and its keys.

On disk and on the wire the gallery document (contracts/gallery.py) is one blob,
``b"DGG1" + nonce(12) + AES-256-GCM(ciphertext + tag)`` with the magic as associated data. The
32-byte key is URL-safe base64 text in a file (mode 0600) or an environment variable.

A probe encoding a gate hands over for wrong-match feedback (docs/decisions/0014) travels, and
rests in the gate's probe store, under the same key: ``b"DGQ1" + nonce(12) + AES-256-GCM(128
little-endian float32)`` with ``b"DGQ1\0" + event_id`` as associated data, so a sealed probe
cannot be passed off as another event's.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from contracts.gallery import (
    EMBEDDING_DIM,
    Gallery,
    GalleryError,
    gallery_from_json,
    gallery_to_json,
)

logger = logging.getLogger(__name__)

MAGIC = b"DGG1"
PROBE_MAGIC = b"DGQ1"
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32


class GalleryKeyError(GalleryError):
    """The key is missing or malformed, or it does not open the gallery (wrong key or tampering)."""


def encrypt_gallery(g: Gallery, key: bytes) -> bytes:
    """Encrypt a gallery: b"DGG1" + 12-byte nonce + AES-256-GCM(JSON), magic as AAD."""
    nonce = os.urandom(NONCE_SIZE)
    return MAGIC + nonce + _aesgcm(key).encrypt(nonce, gallery_to_json(g), MAGIC)


def decrypt_gallery(blob: bytes, key: bytes, *, source: str = "blob") -> Gallery:
    """Decrypt and validate a gallery blob; source (a path) names it in error messages."""
    minimum = len(MAGIC) + NONCE_SIZE + TAG_SIZE
    if len(blob) < len(MAGIC) or blob[: len(MAGIC)] != MAGIC:
        if len(blob) < len(MAGIC) and MAGIC.startswith(blob):
            what = f"truncated: {len(blob)} bytes, need at least {minimum}"
        else:
            what = f"bad magic, expected {MAGIC!r} (not a dormguard gallery)"
        raise GalleryError(f"corrupt gallery file {source}: {what}")
    if len(blob) < minimum:
        raise GalleryError(
            f"corrupt gallery file {source}: truncated: {len(blob)} bytes, need at least {minimum}"
        )
    aesgcm = _aesgcm(key)
    nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_SIZE]
    try:
        plaintext = aesgcm.decrypt(nonce, blob[len(MAGIC) + NONCE_SIZE :], MAGIC)
    except InvalidTag:
        raise GalleryKeyError(f"wrong key or tampered gallery file {source}") from None
    try:
        return gallery_from_json(plaintext)
    except ValueError as exc:
        # Authenticated yet invalid: written by a buggy or foreign tool, not damaged in transit.
        raise GalleryError(f"invalid gallery content in {source}: {exc}") from None


def seal_probe(encoding: npt.ArrayLike, event_id: str, key: bytes) -> bytes:
    """Seal one 128-d probe encoding under the gallery key, bound to its access event."""
    vector = np.asarray(encoding, dtype="<f4")
    if vector.shape != (EMBEDDING_DIM,):
        raise ValueError(f"a probe has {EMBEDDING_DIM} values, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise ValueError("a probe must not contain NaN or infinite values")
    nonce = os.urandom(NONCE_SIZE)
    return PROBE_MAGIC + nonce + _aesgcm(key).encrypt(nonce, vector.tobytes(), _probe_aad(event_id))


def open_probe(blob: bytes, event_id: str, key: bytes) -> npt.NDArray[np.float32]:
    """Open a sealed probe; ValueError when it is not one, or is another event's, or tampered."""
    header = len(PROBE_MAGIC) + NONCE_SIZE
    if len(blob) != header + EMBEDDING_DIM * 4 + TAG_SIZE or blob[:4] != PROBE_MAGIC:
        raise ValueError(f"probe of event {event_id!r}: not a sealed dormguard probe")
    try:
        raw = _aesgcm(key).decrypt(blob[4:header], blob[header:], _probe_aad(event_id))
    except InvalidTag:
        raise ValueError(
            f"probe of event {event_id!r} does not open: wrong key, another event's, or tampered"
        ) from None
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.isfinite(vector).all():
        raise ValueError(f"probe of event {event_id!r} contains NaN or infinite values")
    return vector


def _probe_aad(event_id: str) -> bytes:
    return PROBE_MAGIC + b"\x00" + event_id.encode("utf-8")


def _aesgcm(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        size = len(key) if isinstance(key, bytes) else type(key).__name__
        raise GalleryKeyError(f"gallery key must be {KEY_SIZE} bytes, got {size}")
    return AESGCM(key)


# --- keys -------------------------------------------------------------------------------------


def generate_key() -> str:
    """Return a new random gallery key as URL-safe base64 of 32 bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_SIZE)).decode("ascii")


def load_key(
    *,
    key_file: Path | None,
    key_env: str | None,
    environ: Mapping[str, str] = os.environ,
) -> bytes:
    """Load the 32-byte gallery key from exactly one source: a file or an environment variable."""
    if key_file is not None and key_env is not None:
        raise GalleryKeyError("gallery key: give either a key file or an env var, not both")
    if key_file is not None:
        source = f"file {key_file}"
        try:
            mode = stat.S_IMODE(key_file.stat().st_mode)
            text = key_file.read_text(encoding="ascii")
        except FileNotFoundError:
            raise GalleryKeyError(f"gallery key {source} does not exist") from None
        except UnicodeDecodeError:
            raise GalleryKeyError(f"gallery key {source} is not base64 text") from None
        except OSError as exc:
            raise GalleryKeyError(f"gallery key {source} cannot be read: {exc.strerror}") from None
        if mode & ~0o600:
            logger.warning(
                "gallery key file %s has mode %s; make it 0600 or stricter", key_file, oct(mode)
            )
    elif key_env is not None:
        source = f"env var {key_env}"
        if key_env not in environ:
            raise GalleryKeyError(f"gallery key {source} is not set")
        text = environ[key_env]
    else:
        raise GalleryKeyError("gallery key: no source given (need a key file or an env var)")
    return _decode_key(text.strip(), source)


def _decode_key(text: str, source: str) -> bytes:
    if not text:
        raise GalleryKeyError(f"gallery key {source} is empty")
    padded = text + "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise GalleryKeyError(f"gallery key {source} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise GalleryKeyError(f"gallery key {source} decodes to {len(key)} bytes, need {KEY_SIZE}")
    return key
