"""Face templates and enrolment photos sealed at rest (AES-256-GCM), bound to their person.

- ``face_templates.template_enc``: ``b"DGT1" + nonce(12) + AES-256-GCM(128 little-endian
  float32)`` under the template key, with ``b"DGT1\\0" + person_id`` as associated data, so a
  template copied onto another person's row does not open.
- ``impostor_examples.example_enc``: the same with ``b"DGI1"``: a probe reported as *not* the
  person (wrong-match feedback), bound to that person.
- ``enrolment_photos.photo_enc`` (only with ``keep_photos``): ``b"DGP1" + nonce + AES-GCM(photo)``
  the same way, deleted after the retention (see docs/privacy.md).
"""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from contracts.gallery import EMBEDDING_DIM

TEMPLATE_MAGIC = b"DGT1"
IMPOSTOR_MAGIC = b"DGI1"
PHOTO_MAGIC = b"DGP1"
KEY_SIZE = 32

_NONCE_SIZE = 12
_TAG_SIZE = 16
_TEMPLATE_BYTES = EMBEDDING_DIM * 4


class SealedDataError(ValueError):
    """A sealed template or photo does not open: wrong key, wrong person, or tampered."""


def cipher(key: bytes) -> AESGCM:
    """The AES-256-GCM cipher of a key; ValueError when the key is not 32 bytes."""
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        size = len(key) if isinstance(key, bytes) else type(key).__name__
        raise ValueError(f"encryption key must be {KEY_SIZE} bytes, got {size}")
    return AESGCM(key)


def _associated_data(magic: bytes, person_id: str) -> bytes:
    return magic + b"\x00" + person_id.encode("utf-8")


def _seal(magic: bytes, plaintext: bytes, person_id: str, key: bytes) -> bytes:
    nonce = os.urandom(_NONCE_SIZE)
    sealed = cipher(key).encrypt(nonce, plaintext, _associated_data(magic, person_id))
    return magic + nonce + sealed


def _open(magic: bytes, blob: bytes, person_id: str, key: bytes, what: str) -> bytes:
    header = len(magic) + _NONCE_SIZE
    if len(blob) < header + _TAG_SIZE or blob[: len(magic)] != magic:
        raise SealedDataError(f"{what} of person {person_id!r} is not a sealed dormguard {what}")
    try:
        return cipher(key).decrypt(
            blob[len(magic) : header], blob[header:], _associated_data(magic, person_id)
        )
    except InvalidTag:
        raise SealedDataError(
            f"{what} of person {person_id!r} does not open: wrong key, wrong person or tampered"
        ) from None


def encrypt_template(
    encoding: npt.ArrayLike, person_id: str, key: bytes, *, magic: bytes = TEMPLATE_MAGIC
) -> bytes:
    """Seal a 128-d encoding for storage, bound to its person (AES-256-GCM)."""
    vector = np.asarray(encoding, dtype="<f4")
    if vector.shape != (EMBEDDING_DIM,):
        raise ValueError(f"a template has {EMBEDDING_DIM} values, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise ValueError("a template must not contain NaN or infinite values")
    return _seal(magic, vector.tobytes(), person_id, key)


def decrypt_template(
    blob: bytes, person_id: str, key: bytes, *, magic: bytes = TEMPLATE_MAGIC
) -> npt.NDArray[np.float32]:
    """Open a sealed template; SealedDataError for a wrong key, wrong person or tampering."""
    what = "template" if magic == TEMPLATE_MAGIC else "impostor example"
    raw = _open(magic, blob, person_id, key, what)
    if len(raw) != _TEMPLATE_BYTES:
        raise SealedDataError(
            f"{what} of person {person_id!r} holds {len(raw)} bytes, not {_TEMPLATE_BYTES}"
        )
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def encrypt_impostor(encoding: npt.ArrayLike, person_id: str, key: bytes) -> bytes:
    """Seal an impostor example of a person (a probe reported as not them)."""
    return encrypt_template(encoding, person_id, key, magic=IMPOSTOR_MAGIC)


def decrypt_impostor(blob: bytes, person_id: str, key: bytes) -> npt.NDArray[np.float32]:
    """Open a sealed impostor example; SealedDataError when it does not open."""
    return decrypt_template(blob, person_id, key, magic=IMPOSTOR_MAGIC)


def encrypt_photo(data: bytes, person_id: str, key: bytes) -> bytes:
    """Seal an enrolment photo for storage, bound to its person (AES-256-GCM)."""
    return _seal(PHOTO_MAGIC, data, person_id, key)


def decrypt_photo(blob: bytes, person_id: str, key: bytes) -> bytes:
    """Open a sealed enrolment photo; SealedDataError when it does not open."""
    return _open(PHOTO_MAGIC, blob, person_id, key, "photo")
