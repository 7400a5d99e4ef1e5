"""PIN hashing, card UID handling and the keyboard-wedge card reader.

Everything except KeyboardWedgeReader does no I/O beyond logging (hashlib, hmac, secrets).
The reader owns a daemon thread that reads lines from a text stream, e.g. sys.stdin fed by a
USB reader that types the card number followed by Enter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from edge.gate.model import Person

logger = logging.getLogger(__name__)

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


def find_by_card(people: Mapping[str, Person], uid: str) -> Person | None:
    """Return the one person holding this card UID, or None if nobody (or several) hold it."""
    wanted = normalize_card_uid(uid)
    holders = [
        person
        for person in people.values()
        if any(_normalized_or_none(stored) == wanted for stored in person.card_uids)
    ]
    if len(holders) > 1:
        # A card enrolled twice is a data error; opening for either holder would be a guess.
        logger.warning(
            "card enrolled for several people, refusing it: person_ids=%s",
            sorted(person.person_id for person in holders),
        )
        return None
    return holders[0] if holders else None


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


class LineStream(Protocol):
    """Anything with a text readline(), such as sys.stdin; "" means end of input."""

    def readline(self) -> str: ...


class KeyboardWedgeReader:
    """Reads card UIDs typed line by line into a text stream and hands valid ones to on_card.

    Open the stream with errors="replace": a strict decoder drops the whole buffered chunk on a
    bad byte, whereas a replacement character only costs the one line it is on.
    """

    def __init__(self, stream: LineStream, on_card: Callable[[str], None]) -> None:
        self._stream = stream
        self._on_card = on_card
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.accepted = 0
        self.rejected = 0
        self.callback_errors = 0

    def start(self) -> None:
        """Start reading in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("KeyboardWedgeReader already started")
        self._thread = threading.Thread(target=self._run, name="keyboard-wedge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop delivering cards; a read already blocked ends at the next line or end of input."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the reading thread to end; True if it has ended (or never started)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                line = self._stream.readline()
            except UnicodeDecodeError:
                self.rejected += 1
                logger.warning("card reader line is not valid text, ignored")
                continue
            except (OSError, ValueError):
                logger.exception("card reader stream failed, reader stopped")
                return
            if line == "":
                logger.info("card reader stream ended")
                return
            if self._stop.is_set():
                return
            self._handle_line(line)

    def _handle_line(self, line: str) -> None:
        try:
            uid = normalize_card_uid(line)
        except ValueError as error:
            self.rejected += 1
            logger.warning("card reader line rejected: %s", error)
            return
        self.accepted += 1
        try:
            self._on_card(uid)
        except Exception:
            # One failing handler must not take the reader down for every later card.
            self.callback_errors += 1
            logger.exception("card handler failed: card_uid=%s", uid)


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


def _normalized_or_none(raw: str) -> str | None:
    try:
        return normalize_card_uid(raw)
    except ValueError:
        return None
