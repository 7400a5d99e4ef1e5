"""Card look-up at the gate and the keyboard-wedge card reader.

PIN hashing and card UID normalisation are shared with the gateway: contracts/credentials.py.
The reader owns a daemon thread that reads lines from a text stream, e.g. sys.stdin fed by a
USB reader that types the card number followed by Enter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from contracts.access import Person
from contracts.credentials import normalize_card_uid

logger = logging.getLogger(__name__)


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


def _normalized_or_none(raw: str) -> str | None:
    try:
        return normalize_card_uid(raw)
    except ValueError:
        return None
