"""Credentials both sides handle: PIN hashing and checking, card UID normalisation, keypad input.

The gateway hashes PINs and normalises card UIDs when people are enrolled; gates check them at
the door. One implementation, so what the gateway stores is always what a gate can verify.
Pure: hashlib, hmac and secrets only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PIN_ALGORITHM = "pbkdf2_sha256"
MIN_PIN_DIGITS = 4
MAX_PIN_DIGITS = 8
# Upper bound on iterations read back from storage, so a corrupt record cannot stall the gate.
MAX_ITERATIONS = 10_000_000
_SALT_BYTES = 16
_HASH_BYTES = hashlib.sha256().digest_size

# Longest card UID in hex: 10-byte (triple size) ISO 14443 UIDs.
MAX_CARD_HEX_DIGITS = 20
# Keyboard-wedge readers set to decimal output type 8 to 10 digits (a 32-bit number).
MIN_CARD_DECIMAL_DIGITS = 8
MAX_CARD_DECIMAL_DIGITS = 10
_CARD_SEPARATORS = str.maketrans("", "", ":- ")
_DECIMAL_DIGITS = frozenset("0123456789")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def hash_pin(pin: str, *, iterations: int = 200_000) -> str:
    """Hash a 4–8 digit PIN as "pbkdf2_sha256$<iter>$<salt_b64>$<hash_b64>"."""
    _check_pin_format(pin)
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}, got {iterations}")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"{PIN_ALGORITHM}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_pin(pin: str, encoded: str | None) -> bool:
    """Check a PIN against a stored hash; False for a missing or malformed hash, never raises."""
    if encoded is None:
        return False
    parts = encoded.split("$")
    if len(parts) != 4:
        return False
    algorithm, iterations_text, salt_text, digest_text = parts
    if algorithm != PIN_ALGORITHM:
        return False
    if not (iterations_text.isascii() and iterations_text.isdigit()):
        return False
    iterations = int(iterations_text)
    if not 1 <= iterations <= MAX_ITERATIONS:
        return False
    salt = _unb64(salt_text)
    expected = _unb64(digest_text)
    if not salt or expected is None or len(expected) != _HASH_BYTES:
        return False
    try:
        pin_bytes = pin.encode()
    except UnicodeEncodeError:
        return False
    actual = hashlib.pbkdf2_hmac("sha256", pin_bytes, salt, iterations)
    return hmac.compare_digest(actual, expected)


def normalize_card_uid(raw: str) -> str:
    """Return a card UID as uppercase hex without separators, or 8–10 decimal digits as-is."""
    uid = raw.strip().translate(_CARD_SEPARATORS)
    if not uid:
        raise ValueError("card UID is empty")
    if set(uid) <= _DECIMAL_DIGITS and (
        MIN_CARD_DECIMAL_DIGITS <= len(uid) <= MAX_CARD_DECIMAL_DIGITS
    ):
        return uid
    bad = sorted(set(uid) - _HEX_DIGITS)
    if bad:
        shown = ", ".join(repr(char) for char in bad[:5])
        raise ValueError(f"card UID has characters that are not hex digits: {shown}")
    if len(uid) > MAX_CARD_HEX_DIGITS:
        raise ValueError(
            f"card UID is too long: {len(uid)} hex digits, at most {MAX_CARD_HEX_DIGITS}"
        )
    return uid.upper()


def parse_pin_entry(text: str) -> tuple[str, str]:
    """Split keypad input "<person_id>#<pin>" into (person_id, pin)."""
    parts = text.strip().split("#")
    if len(parts) != 2:
        raise ValueError(
            f"PIN entry must be <person_id>#<pin> with exactly one '#', found {len(parts) - 1}"
        )
    person_id, pin = parts[0].strip(), parts[1].strip()
    if not person_id:
        raise ValueError("PIN entry has no person id before '#'")
    _check_pin_format(pin)
    return person_id, pin


def _check_pin_format(pin: str) -> None:
    # The message must never contain the PIN itself.
    if not MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS:
        raise ValueError(
            f"PIN must have {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits, got {len(pin)} characters"
        )
    if not (pin.isascii() and pin.isdigit()):
        raise ValueError("PIN must contain only the digits 0-9")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
