"""Door-contact state machine and contact-sensor payload parsing (pure: no I/O, no threads).

Rules of :class:`DoorMonitor` (all times are ``time.monotonic()`` seconds passed in by the caller):

* The door is assumed closed until a contact report says otherwise.
* An opening is *authorised* when it happens at or before ``until + grace_s`` of the latest
  authorisation window. :meth:`DoorMonitor.unlocked` opens a window up to ``until`` (the gate
  granted access); :meth:`DoorMonitor.exit_request` opens one of ``exit_window_s`` (a
  request-to-exit button or another legitimate exit). Windows only ever extend, and an
  authorisation is not used up by one opening: the door stays physically unlocked for the whole
  window. :meth:`DoorMonitor.locked` ends the window early (grace still applies, because a
  relock command takes a moment to reach the strike).
* ``contact(True)`` while closed gives ``opened``; if the opening is not authorised it also
  gives ``forced_open``. ``contact(False)`` while open gives ``closed`` with ``open_for_s``.
  A report of the state the door is already in gives nothing (sensors repeat themselves).
* :meth:`DoorMonitor.tick` gives ``held_open`` once per opening, when the door has been open
  for longer than ``held_open_after_s`` (strictly longer); closing the door re-arms it.
  ``held_open`` carries how long the door had been open at that tick.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal

DoorEventKind = Literal["opened", "closed", "held_open", "forced_open"]

_PAYLOAD_SHOWN_CHARS = 64
_OPEN_WORDS = frozenset({"open", "on", "1", "true"})
_CLOSED_WORDS = frozenset({"closed", "off", "0", "false"})
_STATE_WORDS = {"open": True, "closed": False}


@dataclass(frozen=True, slots=True)
class DoorEventOut:
    """One door event produced by the monitor; ``at`` is a monotonic time."""

    kind: DoorEventKind
    at: float
    open_for_s: float | None = None


class DoorMonitor:
    """Turns contact reports and gate authorisations into door events (see module docstring)."""

    def __init__(
        self, held_open_after_s: float, grace_s: float = 1.0, exit_window_s: float = 5.0
    ) -> None:
        if not (math.isfinite(held_open_after_s) and held_open_after_s > 0):
            raise ValueError(f"held_open_after_s must be > 0, got {held_open_after_s!r}")
        if not (math.isfinite(grace_s) and grace_s >= 0):
            raise ValueError(f"grace_s must be >= 0, got {grace_s!r}")
        if not (math.isfinite(exit_window_s) and exit_window_s >= 0):
            raise ValueError(f"exit_window_s must be >= 0, got {exit_window_s!r}")
        self.held_open_after_s = held_open_after_s
        self.grace_s = grace_s
        self.exit_window_s = exit_window_s
        self._authorised_until: float | None = None
        self._opened_at: float | None = None  # None while closed
        self._held_open_reported = False

    @property
    def is_open(self) -> bool:
        """Whether the last contact report said the door is open."""
        return self._opened_at is not None

    def is_authorised(self, now: float) -> bool:
        """Whether an opening at ``now`` would be authorised (grace included)."""
        return self._authorised_until is not None and now <= self._authorised_until + self.grace_s

    def unlocked(self, now: float, until: float) -> None:
        """Record that the gate unlocked the door from ``now`` until ``until``."""
        if until < now:
            raise ValueError(f"unlock window ends before it starts: until={until!r} < now={now!r}")
        self._extend(until)

    def exit_request(self, now: float) -> None:
        """Record a legitimate exit request: the door may open for ``exit_window_s``."""
        self._extend(now + self.exit_window_s)

    def locked(self, now: float) -> None:
        """Record that the door was relocked early: openings after ``now`` + grace are forced."""
        if self._authorised_until is not None:
            self._authorised_until = min(self._authorised_until, now)

    def contact(self, is_open: bool, now: float) -> list[DoorEventOut]:
        """Apply one contact report and return the events it causes."""
        if is_open:
            if self._opened_at is not None:
                return []
            self._opened_at = now
            self._held_open_reported = False
            events = [DoorEventOut("opened", now)]
            if not self.is_authorised(now):
                events.append(DoorEventOut("forced_open", now))
            return events
        if self._opened_at is None:
            return []
        open_for_s = max(0.0, now - self._opened_at)
        self._opened_at = None
        self._held_open_reported = False
        return [DoorEventOut("closed", now, open_for_s)]

    def tick(self, now: float) -> list[DoorEventOut]:
        """Return ``held_open`` once per opening when the door has been open too long."""
        if self._opened_at is None or self._held_open_reported:
            return []
        open_for_s = now - self._opened_at
        if open_for_s <= self.held_open_after_s:
            return []
        self._held_open_reported = True
        return [DoorEventOut("held_open", now, open_for_s)]

    def _extend(self, until: float) -> None:
        if self._authorised_until is None or until > self._authorised_until:
            self._authorised_until = until


def parse_contact_payload(payload: bytes) -> bool:
    """Parse a contact-sensor MQTT payload; True means the door is open."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise _reject(payload) from None
    word = text.lower()
    if word in _OPEN_WORDS:
        return True
    if word in _CLOSED_WORDS:
        return False
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise _reject(payload) from None
        if isinstance(data, dict):
            return _parse_contact_object(data, payload)
    raise _reject(payload)


def _parse_contact_object(data: dict[str, object], payload: bytes) -> bool:
    # Zigbee2MQTT door sensors report contact=true when the magnet touches, i.e. closed.
    if "contact" in data:
        contact = data["contact"]
        if isinstance(contact, bool):
            return not contact
        raise _reject(payload)
    state = data.get("state")
    if isinstance(state, str) and state.strip().lower() in _STATE_WORDS:
        return _STATE_WORDS[state.strip().lower()]
    raise _reject(payload)


def _reject(payload: bytes) -> ValueError:
    shown = payload[:_PAYLOAD_SHOWN_CHARS]
    suffix = "..." if len(payload) > _PAYLOAD_SHOWN_CHARS else ""
    return ValueError(
        f"unrecognised contact payload {shown!r}{suffix}: expected OPEN/CLOSED, ON/OFF, 1/0, "
        'true/false, {"contact": <bool>} or {"state": "open"|"closed"}'
    )
